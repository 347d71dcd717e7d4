# Sums the integers given on the command line (run with: 1 2 3).
def sum_args(values)
  values.map(&:to_i).sum
end

puts sum_args(ARGV)
