# raise, rescue, ensure, retry and propagation through frames.
class LookupFailed < StandardError; end

def checked_div(a, b)
  raise ArgumentError, "division by zero" if b.zero?
  a / b
ensure
  $log << "div"
end

def find(table, key)
  table.fetch(key) { raise LookupFailed, "missing #{key}" }
end

def with_retry
  tries = 0
  begin
    tries += 1
    raise "flaky" if tries < 3
    "done after #{tries}"
  rescue RuntimeError
    retry
  end
end

def outer_call
  inner_call
rescue LookupFailed => e
  "outer got: #{e.message}"
end

def inner_call
  find({}, :nothing)
end

$log = []
puts checked_div(10, 2)
begin
  checked_div(1, 0)
rescue ArgumentError => e
  puts "rescued #{e.message}"
end
puts with_retry
puts outer_call
puts $log.join(",")
