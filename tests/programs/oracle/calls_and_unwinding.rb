# Frames that ctrec keeps a Binding for, entered and left in every way:
# define_method bodies, super, method_missing, argument forwarding, Struct
# methods, external enumerators, and frames left by raise, break and throw
# (later steps must read the locals of the right frame).
class K
  [:a, :b].each do |nm|
    define_method(nm) do |x, y = 2|
      z = [nm, x, y]
      z << self.class.name
      z
    end
  end
end
class Base
  def greet(name, punct = "!")
    msg = "hi #{name}#{punct}"
    msg
  end
end
class Kid < Base
  def greet(name, *)
    pre = name.upcase
    super
  end
  def method_missing(m, *args)
    return super unless m == :ghost
    args << :mm
    args
  end
  def respond_to_missing?(m, p = false) = m == :ghost || super
end
def fwd(...)
  target(...)
end
def target(a, k: 1, &blk)
  t = [a, k]
  blk ? blk.call(t) : t
end
P3 = Struct.new(:a) do
  def twice
    d = a * 2
    d
  end
end
r1 = K.new.a(1)
r2 = K.new.b(2, 3)
g = Kid.new.greet("bo", "?")
gh = Kid.new.ghost(1, 2)
f = fwd(5, k: 6) { |tt| tt.sum }
tw = P3.new(4).twice
e = [1, 2, 3].each_slice(2).map { |sl| sl.sum }
en = [4, 5].each
n1 = en.next
n2 = en.next
def deep(n, acc)
  acc << n
  raise "bottom" if n.zero?
  local = n * 10
  deep(n - 1, acc)
  local
end
def yielder(list)
  list.each do |v|
    w = v + 1
    yield w
  end
  :never
end
def thrower(k)
  inner = k
  throw :out, inner * 2 if k > 1
  inner
end
trail = []
begin
  deep(3, trail)
rescue => err
  got = trail.size
end
after = [1]
hit = yielder([1, 2, 3]) { |x| break x * 100 if x == 3; after << x }
caught = catch(:out) { thrower(1); thrower(2); :none }
final = [trail, after, hit, caught]
def again(q)
  r = q + 1
  r
end
again(final.size)
puts final.inspect, r1.inspect, g, gh.inspect, f, tw, e.inspect, n1 + n2
