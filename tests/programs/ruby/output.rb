# Every common way of writing to stdout and stderr.
puts "puts line"
print "print no newline", "\n"
p :sym, 42
$stdout.write("direct write\n")
$stdout << "shovel" << "\n"
printf("%05.1f\n", 3.14159)
$stderr.puts "to stderr"
STDERR.write("raw stderr\n")
warn "a warning"
puts "done"
