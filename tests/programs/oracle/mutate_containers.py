"""Containers changed in place while they are visible: appends, dict
updates, aliases, nesting past the capture depth, cycles, long ones."""


def lists():
    xs = []
    alias = xs
    for i in range(3):
        xs.append(i * 2)
    alias[0] = "first"
    grid = [[0, 1], [2, [3, [4, [5]]]]]
    grid[1][1][1].append(9)
    grid[0].extend(xs)
    del xs[1]
    xs.insert(0, None)
    long = list(range(40))
    long.pop()
    xs.clear()
    return len(alias) + len(long)


def dicts():
    d = {"a": 1}
    d["b"] = [1, 2]
    d.update(c={"deep": {"deeper": {"deepest": 1}}})
    d["b"].append(3.5)
    view = d["c"]
    view["deep"]["new"] = True
    del d["a"]
    d["a"] = (1, "x")
    d.setdefault("s", set())
    d["s"].add(7)
    return len(d)


def cycles():
    a = [1]
    a.append(a)
    b = {"self": None}
    b["self"] = b
    c = [a, b]
    a.append(c)
    return len(c)


def scalars():
    big = 2**70
    neg = -(2**100)
    text = "x" * 1500
    uni = "h\u00e9llo \u2603"
    data = b"bytes"
    data += b"\xff\xfe not UTF-8"
    buf = bytearray(b"ab")
    buf += b"cd"
    z = complex(1, -2)
    return big, neg, text, uni, data, buf, z


def main():
    total = lists()
    total += dicts()
    total += cycles()
    scalars()
    return total


result = main()
print(result)
