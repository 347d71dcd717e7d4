# A small inventory report: classes, blocks, hashes, an exception and output.
class Item
  attr_reader :name, :price, :count

  def initialize(name, price, count)
    @name = name
    @price = price
    @count = count
  end

  def total
    price * count
  end
end

def report(items)
  items.sort_by(&:total).reverse.each do |item|
    puts format("%-8s %3d x %5.2f = %7.2f", item.name, item.count, item.price, item.total)
  end
  items.sum(&:total)
end

def parse(line)
  name, price, count = line.split(",")
  raise ArgumentError, "no count for #{name}" if count.nil?
  Item.new(name, Float(price), Integer(count))
end

lines = ["apple,0.5,12", "pear,0.75,4", "broken,1.0", "plum,0.3,20"]
items = []
lines.each do |line|
  items << parse(line)
rescue ArgumentError => e
  warn "skipped: #{e.message}"
end
grand = report(items)
puts "grand total: #{grand.round(2)}"
