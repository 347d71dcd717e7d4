# Every kind of value ctrec renders, at and just past its capture limits
# (nesting depth, elements per container, bytes per string), changed in
# place between steps; closures that change their frame's locals; a lambda
# run far from home; objects whose methods must never be called to show
# them.
require "set"

class Trap
  def initialize
    @secret = [1, 2]
  end

  %i[inspect to_s == eql? hash instance_variables class kind_of? is_a?
     respond_to? instance_variable_get frozen? size each].each do |m|
    define_method(m) { |*| raise "#{m} called" }
  end
end

class Node
  attr_accessor :value, :succ

  def initialize(value)
    @value = value
  end
end

class Tally < Hash
end

class Names < Array
end

class Label < String
end

class Refused < StandardError
  def initialize(code)
    @code = code
    super("refused #{code}")
  end
end

Config = Struct.new(:name, :opts, keyword_init: true)

def all_kinds(a, b = 2, *rest, c:, d: 4, **opts, &blk)
  sum = a + b + c + d
  rest << sum
  opts[:sum] = sum
  blk&.call(sum)
end

def fact(n)
  return 1 if n <= 1
  below = fact(n - 1)
  n * below
end

def apply(fn, x)
  fn.call(x)
end

set = Set.new([1, 2])
set << [3, 4]
tally = Tally.new
names = Names.new
label = Label.new("lab")
label << "el"
text = +"abc"
view = text
text << "def"
view.upcase!
exact = "y" * 1000
over = "z" * 1001
utf = "héllo wörld"
cut = "a" + "é" * 600
bin = "\xff\xfe ok".b
wide = {}
40.times { |i| wide["k#{i}"] = i }
crowd = Object.new
40.times { |i| crowd.instance_variable_set(:"@v#{i}", i) }
bo = BasicObject.new
trap = Trap.new
ring = Node.new(1)
ring.succ = Node.new(2)
ring.succ.succ = ring
nest = {l1: [{l3: [:too_deep]}]}
nest[:l1] << {sibling: 1}
ranges = [1.., "a".."c", (1.0...2.5)]
nums = [2**63 - 1, -(2**63), 2**64, 2**40000, 0.1 + 0.2, -0.0, 1e20, Rational(-1, 3), Complex(1, -2)]
Wide = Struct.new(*(1..40).map { |i| :"m#{i}" })
wide_struct = Wide.new(*1..40)
times = [Time.at(0, 5, :nsec), Time.at(-1.5), [[Time.at(1)]]]
patterns = [/ab+c/i, [[/deep/]]]
errors = []
begin
  raise ArgumentError
rescue => bare
  errors << bare
end
begin
  raise Refused, 7
rescue Refused => refused
  errors << refused
end
cfg = Config.new(name: "c", opts: {verbose: true})
cfg.opts[:level] = 3
counter = 0
[10, 20].each_with_index do |v, i|
  counter += v * i
  tally[v] = counter
  names << "n#{i}"
end
squares = (1..3).map { |k| sq = k * k; sq + counter }
all_kinds(1, c: 3, e: 5) { |s| counter = s }
all_kinds(1, 5, 6, 7, c: 3, d: 1)
deepest = fact(3)
scale = ->(x) { x * counter }
scaled = apply(scale, 2)
tally[:done] = [scaled, deepest, squares]
puts counter, scaled, tally.size
