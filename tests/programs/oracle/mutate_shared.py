"""Values shown at a step and changed afterwards, which a shim must not
send as a reference to what it sent before: the same object in several
locals and nested in others, containers mutated in place after a step
showed them, an object whose cycles read differently from different
places, long strings repeated and replaced (mutate_threads.py has a
list another thread changes)."""


class Box:
    def __init__(self, items):
        self.items = items
        self.owner = None


def shared():
    items = [1, 2, 3]
    box = Box(items)
    pair = (box, items)
    again = [box, box, [box], pair]
    items.append(4)
    box.items = items + [5]
    box.owner = box
    pair[0].owner = pair
    del again[0]
    items.clear()
    return pair


def contexts():
    parent = Box([])
    child = Box([parent])
    parent.owner = child
    child.owner = parent
    holder = [child]
    holder.append(parent)
    deeper = [[child], [[parent]]]
    child.items.append(deeper)
    return holder


def strings():
    text = "a line of some document that is long enough " * 3
    same = text
    parts = [text, text[:50], same, (text, same)]
    text = text.upper()
    parts.append(text)
    same = text
    return parts


def loop():
    rows = []
    for i in range(4):
        rows.append([i, rows[-1] if rows else None])
        rows[0][0] = -i
    return rows


shared()
contexts()
strings()
loop()
