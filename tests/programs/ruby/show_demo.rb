# A small program for ctrecctl show's expected listing.

def scale(values, factor)
  out = values.map { |v| v * factor }
  out
end

def describe(name, total)
  text = "#{name}: #{total}"
  puts text
  text.length
end

numbers = scale([1, 2, 3], 2)
total = numbers.sum
width = describe("total", total)
puts "width #{width}"
