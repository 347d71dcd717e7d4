"""Classes: methods, class and static methods, inheritance, super(),
properties, dataclasses, __slots__, dunder methods."""
from dataclasses import dataclass, field


class Shape:
    count = 0

    def __init__(self, name):
        self.name = name
        Shape.count += 1

    def area(self):
        return 0

    def describe(self):
        return f"{self.name} with area {self.area()}"

    @classmethod
    def made(cls):
        return cls.count

    @staticmethod
    def unit():
        return "cm"


class Rect(Shape):
    def __init__(self, w, h):
        super().__init__("rect")
        self.w = w
        self.h = h

    def area(self):
        return self.w * self.h

    @property
    def perimeter(self):
        return 2 * (self.w + self.h)


class Square(Rect):
    def __init__(self, side):
        super().__init__(side, side)
        self.name = "square"


@dataclass
class Point:
    x: int
    y: int = 0
    tags: list = field(default_factory=list)

    def moved(self, dx):
        return Point(self.x + dx, self.y, self.tags)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a):
        self.a = a


class Vec:
    def __init__(self, *xs):
        self.xs = list(xs)

    def __add__(self, other):
        return Vec(*[a + b for a, b in zip(self.xs, other.xs)])

    def __len__(self):
        return len(self.xs)


shapes = [Rect(2, 3), Square(4)]
for s in shapes:
    print(s.describe())
print(shapes[0].perimeter, Shape.made(), Shape.unit())
p = Point(1, 2)
q = p.moved(5)
print(q.x, q.y)
sl = Slotted(9)
v = Vec(1, 2) + Vec(3, 4)
print(v.xs, len(v), sl.a)
