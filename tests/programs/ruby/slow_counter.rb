# Counts slowly so tests can act on a live recording; prints each step.
def tick(i)
  sleep 0.05
  i * 2
end

n = (ARGV[0] || "20").to_i
total = 0
n.times do |i|
  total += tick(i)
  puts "tick #{i} total #{total}"
  $stdout.flush
end
