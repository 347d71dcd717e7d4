# Threads, fibers, external enumerators and a Ractor: every thread's calls
# stay balanced, a fiber that pauses mid-method does not disturb its
# resumer's frames, and Ractor code is skipped safely.
def work(tag, n)
  acc = 0
  n.times { |i| acc += step_of(i) }
  "#{tag}=#{acc}"
end

def step_of(i)
  i * 2
end

# Each thread is joined before the next starts: the line order must be the
# same in the reference run that the test compares with.
threads = (1..3).map { |t| Thread.new(t) { |k| work("t#{k}", k * 3) }.tap(&:join) }
puts threads.map(&:value).join(" ")

queue = Queue.new
producer = Thread.new do
  3.times { |i| queue << step_of(i) }
  queue << :done
end
producer.join
got = []
while (v = queue.pop) != :done
  got << v
end
p got

def numbers
  return to_enum(:numbers) unless block_given?
  yield 1
  yield step_of(5)
  yield 3
end

e = numbers
p e.next
p e.next
p e.next
begin
  e.next
rescue StopIteration
  puts "stop"
end

fib = Fiber.new do |x|
  y = Fiber.yield(work("f", x))
  z = Fiber.yield(step_of(y))
  z + 1
end
p fib.resume(2)
p fib.resume(10)
p fib.resume(41)

lazy = (1..Float::INFINITY).lazy.map { |i| step_of(i) }.select(&:positive?)
p lazy.first(3)

r = Ractor.new(4) { |n| n * 10 }
p r.take
