# Fibers and external enumerators share objects with the main fiber: each
# resume runs the other fiber's lines (its own thread in the trace) against
# values the main fiber changed in between.
def numbers(box)
  Enumerator.new do |y|
    n = 0
    while n < 3
      box << n
      y << n * 2
      n += 1
    end
  end
end

box = []
gen = numbers(box)
first = gen.next
box << :between
second = gen.next
worker = Fiber.new do |start|
  acc = [start]
  got = Fiber.yield(acc)
  acc << got
  box << acc
  acc
end
out = worker.resume(1)
out << :outside
back = worker.resume(2)
third = gen.next
puts first, second, third, back.inspect, box.size
