# Every way of calling: blocks, procs, lambdas, yield, &block, define_method,
# method_missing, super, aliases, singleton and class methods, send, and all
# parameter kinds including anonymous ones and `...` forwarding.
class Base
  def greet(name, punct = "!")
    "hi #{name}#{punct}"
  end

  def self.build(*args, **opts)
    new
  end
end

class Child < Base
  def greet(name, punct = "?")
    base = super
    base + " (child)"
  end
  alias_method :hello, :greet
  alias salute greet

  define_method(:twice) { |x| x * 2 }

  def method_missing(name, *args, &blk)
    if name.to_s.start_with?("dyn_")
      "missing #{name} #{args.size}"
    else
      super
    end
  end

  def respond_to_missing?(name, include_private = false)
    name.to_s.start_with?("dyn_") || super
  end
end

obj = Child.new
def obj.only_here(v)
  v + 100
end

def all_kinds(a, b = a + 1, *rest, c:, d: c * 2, **kw, &blk)
  total = a + b + rest.sum + c + d + kw.values.sum
  blk ? blk.call(total) : total
end

def anon(*, **, &)
  inner_anon(1, 2, k: 3, &)
end

def inner_anon(*args, **kw, &blk)
  blk.call(args.size + kw.size)
end

def forward(...)
  target(...)
end

def target(x, y: 0)
  x + y
end

def each_pair_sum(list)
  list.each_slice(2).map { |a, b| yield(a, b || 0) }
end

def make_counter
  count = 0
  increment = -> { count += 1 }
  [increment, proc { count }]
end

def run_block(&block)
  block.call(7)
end

puts obj.greet("ann")
puts obj.hello("bob", ".")
puts obj.salute("cy")
puts obj.twice(21)
puts obj.dyn_thing(1, 2)
puts obj.only_here(1)
puts Child.build(1, k: 2).class
puts obj.send(:greet, "dee")
puts obj.public_send(:twice, 4)
puts all_kinds(1, c: 3)
puts all_kinds(1, 2, 3, 4, c: 5, d: 6, e: 7) { |t| t * 10 }
puts anon(1, 2, k: 3) { |n| "anon #{n}" }
puts forward(5, y: 6)
p each_pair_sum([1, 2, 3, 4, 5]) { |a, b| a * b }
inc, read = make_counter
3.times { inc.call }
puts read.call
square = lambda { |v| v * v }
puts run_block { |v| square.(v) + 1 }
puts [3, 1, 2].sort_by { |v| -v }.map(&:to_s).join(",")
puts %w[a b].each_with_index.map { |s, i| "#{s}#{i}" }.join
begin
  obj.not_there
rescue NoMethodError => e
  puts "no method: #{e.name}"
end
