# A class with custom to_s and inspect: the recorder must not call them.
class Vec
  def initialize(dx, dy)
    @dx = dx
    @dy = dy
  end

  def to_s
    "<#{@dx};#{@dy}>"
  end

  def inspect
    "Vec#{to_s}"
  end
end

v = Vec.new(7, 9)
p v.to_s
p v
