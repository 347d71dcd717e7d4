# Values that a careless recorder would crash on or change.
class Touchy
  def initialize
    @secret = 1
  end

  def inspect
    raise "inspect must not be called"
  end

  def to_s
    raise "to_s must not be called"
  end

  def ==(other)
    raise "== must not be called"
  end

  def hash
    raise "hash must not be called"
  end
end

class Bare < BasicObject
  def initialize(v)
    @v = v
  end
end

def keep(x)
  x
end

big = 2**100
edge64 = 2**63
neg_big = -(3**50)
raw = "\xff\xfe bytes".dup.force_encoding("BINARY")
latin = "caf\xe9".dup.force_encoding("ISO-8859-1")
bare = Bare.new(5)
touchy = Touchy.new
loop_ary = [1]
loop_ary << loop_ary
loop_hash = {}
loop_hash[:self] = loop_hash
deep = [[[[[[[[1]]]]]]]]
long = (1..1000).to_a
keep(touchy)
keep(bare)
keep(big)
puts big
puts neg_big
puts edge64
puts raw.bytesize
puts latin.bytesize
puts loop_ary.length
puts deep.flatten.first
puts long.length
