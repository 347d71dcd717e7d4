# Every kind of method parameter, plus singleton and module methods.
module Util
  def self.twice(v)
    v * 2
  end
end

def all_kinds(a, b = 2, *rest, c:, d: 4, **opts, &blk)
  [a, b, rest, c, d, opts, blk ? blk.call : nil]
end

def anonymous_rest(*)
  :anon
end

obj = Object.new
def obj.solo(z)
  z
end

p all_kinds(1, c: 3)
p all_kinds(1, 5, 6, 7, c: 8, d: 9, e: 10) { :blk }
p anonymous_rest(1, 2)
p Util.twice(21)
p obj.solo(:one)
