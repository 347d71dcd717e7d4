# Frames whose locals ctrec reads through a Binding it keeps for the whole
# frame: rescue and ensure clauses, methods made with define_method, class
# bodies between top-level lines, nested blocks that assign outer locals,
# a method whose locals are changed by a block it yields to, and blocks
# that library code (Set#each, Kernel#loop, #tap) or another self
# (instance_eval, instance_exec) runs: ctrec records those as calls.
require "set"
require_relative "_helper"
class Rect
  attr_reader :w, :h

  def initialize(w, h)
    @w = w
    @h = h
  end

  define_method(:area) do
    product = @w * @h
    product
  end

  def grow_by(amount)
    sizes = [@w, @h]
    yield sizes
    @w += amount
    sizes << @w
  end
end

def risky(n)
  notes = []
  begin
    notes << :try
    raise ArgumentError, "n is #{n}" if n.odd?
    notes << :fine
  rescue ArgumentError
    notes << :rescued
    extra = n * 2
  ensure
    notes << :ensured
  end
  [notes, extra]
end

total = 0
rect = Rect.new(2, 3)
area = rect.area
rect.grow_by(4) do |sz|
  sz << :from_block
  total += sz.size
end
first = risky(1)
second = risky(2)

class Rect
  LIMIT = 10
end

grid = [[0, 0], [0, 0]]
grid.each_with_index do |row, y|
  row.each_index do |x|
    row[x] = y * 10 + x
    total += row[x]
  end
end
def through_library(items)
  acc = []
  items.each { |v| acc << v * 2 }
  i = 0
  loop do
    i += 1
    break if i > 1
  end
  5.tap { |t| acc << t + i }
  acc.instance_eval { push(size) }
  acc
end

doubled = through_library(Set[1, 2])
stamp(doubled, :stamped)
holder = Object.new
holder.instance_exec(doubled) { |d| @seen = d.size }
puts total, area, first.inspect, second.inspect
