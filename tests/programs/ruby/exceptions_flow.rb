# rescue, ensure, retry, re-raise, throw/catch, exceptions unwinding
# through blocks and several frames, and an uncaught exception at the end
# (exit status 1, Ruby's message on stderr).
class AppError < StandardError
  def initialize(msg = "app failed")
    super
  end
end

def deep(n)
  raise AppError, "deep #{n}" if n.zero?
  [n].each { |k| deep(k - 1) }
end

def with_ensure(log)
  log << :start
  yield
ensure
  log << :ensure
end

def flaky(state)
  state[:tries] += 1
  raise IOError, "try #{state[:tries]}" if state[:tries] < 3
  state[:tries]
end

def retrying
  state = { tries: 0 }
  begin
    flaky(state)
  rescue IOError
    retry
  end
end

def reraise
  deep(1)
rescue AppError => e
  raise RuntimeError, "wrapped: #{e.message}"
end

def find_first(rows)
  catch(:found) do
    rows.each do |row|
      row.each { |v| throw :found, v if v > 2 }
    end
    nil
  end
end

log = []
begin
  with_ensure(log) { deep(2) }
rescue AppError => e
  puts "caught #{e.message}"
end
p log
puts retrying
begin
  reraise
rescue => e
  puts e.message
  puts e.cause.class
end
p find_first([[1, 2], [3, 4]])
x = Integer("42") rescue -1
p x
y = begin
  Integer("nope")
rescue ArgumentError
  0
else
  1
ensure
  puts "ensure ran"
end
p y
def final(v)
  raise AppError, "final #{v}"
end
final(7)
