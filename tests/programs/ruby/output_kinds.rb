# Every way Ruby writes to stdout and stderr; output sent elsewhere (a
# StringIO in $stdout) is not program output.
require "stringio"
require "pp"

puts "puts line", "second"
print "print ", 1, "\n"
p :sym, [1, "two"]
pp({ "key" => [1, 2, 3] })
printf("%05.1f|%s\n", 3.14159, "fmt")
putc "A"
putc 10
$stdout.write("write ", "two args\n")
STDOUT << "shovel " << 42 << "\n"
$stdout.flush
STDOUT.syswrite("syswrite\n")
warn "warned"
warn "two", "lines"
$stderr.puts "stderr puts"
STDERR.print "stderr print\n"
$stderr.write "stderr write\n"
old = $stdout
$stdout = StringIO.new
puts "into the StringIO"
captured = $stdout.string
$stdout = STDERR
puts "stdout is stderr now"
$stdout = old
puts "captured #{captured.bytesize} bytes"
$stdout.print "utf-8: héllo ✓\n"
puts nil
puts []
print
$, = nil
$stdout.puts 1.5, nil, :x
