# Ranges, regexps, symbols, hashes, frozen strings and inject.
span = (1..4)
span_total = span.sum
puts span_total
rx = /(\d+)-(\d+)/
m = rx.match("from 10-20")
puts m[2]
tag = :ready
puts tag.to_s.upcase
h = { "one" => 1, "two" => 2 }
puts h.keys.inspect
puts h.value?(2)
fixed = "const".freeze
begin
  fixed << "x"
rescue FrozenError
  puts "frozen"
end
product = [1, 2, 3, 4].inject(1) { |acc, k| acc * k }
puts product
