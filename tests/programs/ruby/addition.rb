# Two integers through one method call.
def add(left, right)
  left + right
end

total = add(4, 5)
puts total
