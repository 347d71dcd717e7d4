# A forked child and two threads: each must record coherently.
def work(tag, n)
  total = 0
  n.times { |i| total += i }
  "#{tag}:#{total}"
end

def in_child
  puts work("child", 4)
end

pid = fork do
  in_child
end
Process.wait(pid)
puts "child status #{$?.exitstatus}"

threads = [1, 2].map do |k|
  Thread.new(k) { |kk| work("thread#{kk}", kk * 3) }
end
puts threads.map(&:value).join(" ")
eval("puts work('eval', 2)")
puts work("parent", 5)
