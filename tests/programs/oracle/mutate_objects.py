"""Objects changed in place: attribute assignment, objects shared between
locals and nested in each other, __slots__, cycles through attributes,
closures that rebind a captured variable, module and class bodies."""


class Node:
    kind = "node"

    def __init__(self, value):
        self.value = value
        self.children = []

    def add(self, child):
        self.children.append(child)
        child.parent = self
        return child


class Point:
    __slots__ = ("y", "x")

    def __init__(self, x):
        self.x = x


class Empty:
    pass


def objects():
    root = Node(1)
    same = root
    kid = root.add(Node(2))
    kid.value = [kid.value, "changed"]
    same.extra = {"k": kid}
    root.children[0].children.append(Node(3))
    p = Point(1)
    p.y = [p.x]
    p.x = p
    e = Empty()
    e.later = 1
    del root.extra
    return root, same, kid, p, e


def closures():
    count = 0
    seen = []

    def bump(step):
        nonlocal count
        count += step
        seen.append(count)
        return count

    bump(1)
    bump(2)
    return count, seen


shared = Node("top")
objects()
closures()
shared.value = "still top"
print(shared.value)
