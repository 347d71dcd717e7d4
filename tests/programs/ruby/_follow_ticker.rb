# Prints a few lines slowly, so `ctrecctl follow` can be watched while the
# program runs: ruby _follow_ticker.rb COUNT DELAY
def work(i, label)
  value = i * 3
  puts "#{label} #{i} -> #{value}"
  $stdout.flush
  value
end

count = (ARGV[0] || "5").to_i
delay = (ARGV[1] || "0.3").to_f
total = 0
count.times do |i|
  total += work(i, "tick")
  sleep delay
end
puts "done #{total}"
