# Values that are hard to capture: BasicObject, objects whose inspect, to_s
# and == must never be called, cycles, huge structures, frozen strings,
# Set, Time, Regexp, Rational, Complex, BigDecimal, NaN and Infinity.
require "set"
require "bigdecimal"

class Trap
  def initialize
    @secret = 1
  end

  def inspect = raise("inspect called")
  def to_s = raise("to_s called")
  def ==(other) = raise("== called")
  def hash = raise("hash called")
end

class Bare < BasicObject
  def initialize(v)
    @v = v
  end
end

def look(value)
  kind = value.class rescue :basic
  kind
end

trap = Trap.new
bare = Bare.new(3)
cyc = [1, 2]
cyc << cyc
h = { a: 1 }
h[:self] = h
huge = Array.new(10_000) { |i| i }
long = "x" * 100_000
frozen = "frozen".freeze
set = Set[1, 2, 3]
time = Time.at(0, 123_456, :usec).utc
re = /ab+c/ix
rat = Rational(3, 4)
cpx = Complex(1, -2)
dec = BigDecimal("1.25")
nan = Float::NAN
inf = -Float::INFINITY
big = 2**100
sym = :"with space"
range = (1..5)
st = Struct.new(:a, :b).new(1, [2])
look(trap)
look(bare)
look(cyc)
look(h)
look(huge)
look(long)
look(frozen)
look(set)
look(time)
look(re)
look(rat)
look(cpx)
look(dec)
look(nan)
look(inf)
look(big)
look(sym)
look(range)
look(st)
puts [cyc.size, h.size, huge.size, long.size, set.size, big.bit_length].join(",")
