# One value of each common Ruby type, kept in a single array.
require 'set'
require 'ostruct'

Pair2 = Struct.new(:left, :right)
things = [
  2.25,
  { x: 10, y: 20 },
  (2..5),
  Set.new([7, 8]),
  Time.at(0).utc,
  /c+d/i,
  Pair2.new(3, 4),
  OpenStruct.new(alpha: 1, beta: 2)
]
p things.length
puts things.first
