# Containers and objects changed in place, seen through every name that
# holds them: Array#<<, Hash updates, instance variables, aliases, nested
# containers, objects shared between locals, cycles.
class Point
  attr_accessor :x, :y

  def initialize(x, y)
    @x = x
    @y = y
  end

  def shift(dx)
    @x += dx
    @tag = :moved
    self
  end
end

Pair = Struct.new(:left, :right)

def grow(list, item)
  list << item
  list.size
end

def touch(h, key)
  h[key] = (h[key] || 0) + 1
  h
end

a = []
alias_a = a
a << 1
a << "two" << :three
alias_a.push(4.5, nil, true)
h = {}
h[:count] = 1
h["list"] = a
touch(h, :count)
h.delete("list")
h.store(:nested, {inner: [1, [2, [3, [4]]]]})
pt = Point.new(1, 2)
same = pt
pt.x = 10
same.shift(5)
pts = [pt, pt, Point.new(0, 0)]
pts[2].y = 7
grow(a, pt)
a << a
h[:self] = h
pair = Pair.new(a, h)
pair.left = pts
r = (1..pt.x)
big = 2**100
neg = -(2**64)
sym_list = %i[a b c]
long = "x" * 1500
many = (1..40).to_a
deep = [[[[[:bottom]]]]]
3.times do |i|
  many[i] = i * 100
  deep[0][0] << i
end
rat = Rational(3, 4)
klass = Point
puts a.size, h.size
