"""Values the recorder must capture without running program code or
crashing: cycles, big ints, bytes, nested containers and objects whose
__repr__, __eq__, __hash__, __getattr__ and properties raise."""


class Evil:
    def __init__(self):
        self.ok = 1

    def __repr__(self):
        raise RuntimeError("repr called")

    def __eq__(self, other):
        raise RuntimeError("eq called")

    def __hash__(self):
        raise RuntimeError("hash called")

    def __getattr__(self, name):
        raise RuntimeError("getattr called")

    @property
    def prop(self):
        raise RuntimeError("property called")


def show(value):
    kind = type(value).__name__
    return kind


loop = [1, 2]
loop.append(loop)
d = {"self": None}
d["self"] = d
big = 2 ** 100
neg = -(3 ** 70)
small_neg = -5
data = b"\x00\xffbytes"
buf = bytearray(b"abc")
nested = {"a": [1, (2, 3), {4, 5}], "b": {"c": frozenset([6])}}
evil = Evil()
mixed = [evil, None, True, 1.5, "s", complex(1, 2), range(3)]
long_text = "x" * 10000
deep = [[[[[[1]]]]]]
for v in (loop, d, big, neg, small_neg, data, buf, nested, evil, mixed, deep):
    print(show(v))
print(len(long_text), big, neg)
