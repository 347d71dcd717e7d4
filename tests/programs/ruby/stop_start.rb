# Stop/start fixture: ticks at the top level, then waits deep in a call
# chain. The test stops recording while it ticks and starts it again while
# the program waits in leaf; ARGV: go-file, release-file.
def ready?(path)
  File.exist?(path)
end

def leaf(level, release)
  marker = level * 10
  puts "in leaf"
  $stdout.flush
  sleep 0.02 until ready?(release)
  marker + 1
end

def middle(x, release)
  label = "mid#{x}"
  got = leaf(x + 1, release)
  "#{label}:#{got}"
end

go, release = ARGV
i = 0
until ready?(go)
  puts "tick #{i}"
  $stdout.flush
  i += 1
  sleep 0.02
end
puts middle(4, release)
puts "done"
