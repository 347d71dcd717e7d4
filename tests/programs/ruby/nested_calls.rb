# Calls several frames deep and recursion.
def leaf(v)
  v * 2
end

def branch(v)
  leaf(v) + 1
end

def trunk(v)
  branch(v) + 100
end

def fib(n)
  return n if n < 2
  fib(n - 1) + fib(n - 2)
end

puts trunk(5)
puts fib(6)
