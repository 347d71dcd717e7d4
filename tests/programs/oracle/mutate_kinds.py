"""Less common shapes changing in place: subclasses of builtins, sets,
generators, comprehensions, deleted and rebound names, wide objects and
dicts past the element limit, object chains past the depth limit, inherited
__slots__, exceptions, callables and modules held in locals, a callee that
changes its caller's containers, class bodies with variables."""
import math


class Bag(list):
    pass


class Table(dict):
    pass


class Count(int):
    pass


class Base:
    __slots__ = ("a",)


class Derived(Base):
    __slots__ = ("b", "c")


class Wide:
    def __init__(self):
        for i in range(40):
            setattr(self, "f%02d" % i, i)


class Link:
    def __init__(self, nxt):
        self.nxt = nxt


class Config:
    size = 3
    names = ["a"]
    names.append("b")


def fill(target, table):
    target.append(len(target))
    table[len(table)] = target


def gen(limit):
    acc = []
    for i in range(limit):
        acc.append(i)
        yield list(acc)


def kinds():
    bag = Bag([1])
    bag.append(Count(5))
    table = Table(x=bag)
    fill(bag, table)
    tags = {"b"}
    tags.add("a")
    tags.discard("b")
    frozen = frozenset([1])
    squares = [n * n for n in range(4)]
    pairs = {k: [k] for k in "ab"}
    for part in gen(2):
        part.append(-1)
    del part
    d = Derived()
    d.c = [d]
    d.a = 1.5
    wide = Wide()
    wide.f00 = "changed"
    big = {i: i for i in range(40)}
    big[0] = big
    chain = Link(Link(Link(Link(None))))
    chain.nxt.nxt.nxt.nxt = chain
    try:
        raise ValueError("boom")
    except ValueError as err:
        caught = err
    f, m, meth, builtin = fill, math, wide.__init__, len
    flags = (True, None, math.inf, -0.0)
    if (n := len(squares)) > 2:
        n += 1
    return bag, table, tags, frozen, pairs, caught, f, m, meth, builtin, flags


print(len(kinds()), Config.size)
