# yield, explicit block parameters, procs and lambdas.
def each_twice
  out = []
  [1, 2].each { |v| out << yield(v) }
  out
end

def apply(value, &blk)
  blk.call(value) + blk.call(value + 1)
end

def proc_early_return
  pr = Proc.new { return 5 }
  pr.call
  99
end

def lambda_local_return
  la = ->(k) { return k * 3 }
  la.call(4) + 1
end

def arity_check
  strict = lambda { |a, b| a + b }
  loose = proc { |a, b| [a, b] }
  got = loose.call(1, 2, 3)
  begin
    strict.call(1, 2, 3)
  rescue ArgumentError => err
    msg = err.message
  end
  [got, msg]
end

p each_twice { |n| n * 10 }
p apply(3) { |x| x * x }
p proc_early_return
p lambda_local_return
p arity_check
