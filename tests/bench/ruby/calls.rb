# Call-heavy loop for tests/bench/ruby_bench.sh: N calls (default 200,000)
# of a method with three locals.
def work(i)
  a = i + 1
  b = a * 2
  c = b - i
  c
end

n = (ARGV[0] || "200000").to_i
sum = 0
i = 0
while i < n
  sum += work(i)
  i += 1
end
puts sum
