# Inheritance, super, class-level state and singleton methods.
class Shape
  @count = 0

  class << self
    attr_reader :count
  end

  def self.register
    @count += 1
  end

  def initialize(name, sides)
    @name = name
    @sides = sides
    Shape.register
  end

  def describe
    "#{@name} with #{@sides} sides"
  end
end

class Square < Shape
  def initialize(size)
    super("square", 4)
    @size = size
  end

  def describe
    super + " of size #{@size}"
  end

  def area
    @size * @size
  end
end

module Greeter
  def greet(who)
    "hi #{who} from #{@name}"
  end
end

Shape.include(Greeter)

tri = Shape.new("triangle", 3)
sq = Square.new(5)
puts tri.describe
puts sq.describe
puts sq.area
puts sq.greet("you")
puts Shape.count
