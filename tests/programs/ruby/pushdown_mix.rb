# Push-down fixture: skipped helpers that call back into recorded code,
# a skip-tree that prints and raises, recursion, a fiber and a thread.
module Fmt
  def self.wrap(value)
    inner = value.to_s
    yield inner
  end

  def self.loud(text)
    puts "loud #{text}"
    text.upcase
  end
end

module Heavy
  def self.crunch(n)
    acc = 0
    n.times { |i| acc += Heavy.step(i) }
    puts "crunched #{acc}"
    begin
      raise ArgumentError, "inside the tree"
    rescue ArgumentError
      acc += 1
    end
    acc
  end

  def self.step(i)
    i % 3
  end
end

def fact(n)
  n <= 1 ? 1 : n * fact(n - 1)
end

def shown(x)
  "shown #{x}"
end

results = []
3.times do |k|
  results << Fmt.wrap(k) { |s| shown(s) }
  results << Heavy.crunch(5 + k)
end
puts Fmt.loud(results.join(","))
puts fact(5)
fib = Fiber.new do
  a = Fmt.wrap(1) { |s| shown(s) }
  Fiber.yield a
  Heavy.crunch(3)
end
puts fib.resume
puts fib.resume
t = Thread.new { Fmt.wrap(7) { |s| shown(s) } }
puts t.value
