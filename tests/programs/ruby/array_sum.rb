# A loop over an array with an accumulator.
def total_of(items)
  acc = 0
  items.each do |item|
    acc += item
  end
  acc
end

puts total_of([2, 4, 6, 8])
