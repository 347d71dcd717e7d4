# if/elsif/else, case/when, while, until, next, break, retry-like loops.
def sign_of(n)
  if n < 0
    "minus"
  elsif n == 0
    "nil"
  else
    n.even? ? "even" : "odd"
  end
end

def evens_below(limit)
  found = []
  i = 0
  while i < limit
    i += 1
    next if i.odd?
    break if i > 6
    found << i
  end
  found
end

def count_down(from)
  seen = []
  until from.zero?
    seen << from
    from -= 1
  end
  seen
end

def kind(x)
  case x
  when Integer then "int"
  when String, Symbol then "text"
  when nil then "nothing"
  else "other"
  end
end

[-1, 0, 3, 4].each { |v| puts sign_of(v) }
p evens_below(10)
p count_down(3)
p [1, "a", :b, nil, 2.0].map { |x| kind(x) }
