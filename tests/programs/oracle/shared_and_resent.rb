# Values a shim may send once and refer to afterwards: the same object in
# several locals and nested at several depths, containers and long strings
# mutated in place after a step sent them (a stale reference would show
# the old value), strings grown with <<, frozen strings, objects that reach
# each other at depths where a cycle shows differently, and enough distinct
# values that a small limits.value_refs evicts the early ones.
class Node
  attr_accessor :name, :next_node, :items

  def initialize(name, items)
    @name = name
    @items = items
  end
end

# A document whose kid points back to it: seen from `holder` the kid list
# ends in "#<Kid>" (too deep), seen from `kid` in "<cycle>", at the same
# depth in the same step.
class Doc
  attr_accessor :kids
end

class Kid
  def initialize(doc)
    @doc = doc
  end
end

class Holder
  def initialize(doc)
    @doc = doc
  end
end

Duo = Struct.new(:a, :b)

def rename(node, text)
  node.name << text
  node
end

def fill(list, n)
  n.times { |i| list << "entry number #{i} of the list" }
  list
end

holder = nil
kid = nil
doc = Doc.new
kid = Kid.new(doc)
doc.kids = [kid, "a second kid that is a string"]
holder = Holder.new(doc)
doc.kids << kid
shared = ["a long string held in several places", 1, 2]
again = shared
box = [shared, [shared, [shared]]]
map = {first: shared, second: box}
shared << "appended after it was sent"
shared[1] = 100
text = +"a string that grows in place"
alias_text = text
text << ", then grows again"
text.upcase!
frozen = "a frozen string literal, the same each time".freeze
frozen_too = frozen
left = Node.new(+"left node name", [1, 2, 3])
right = Node.new(+"right node name", left.items)
left.next_node = right
right.next_node = left
pair = [right]
nested = [[left]]
rename(left, " renamed")
left.items << 4
right.items.clear
left.next_node = nil
list = fill([], 3)
list[0] = "replaced entry"
list.reverse!
many = (1..40).map { |i| "distinct value number #{i} for eviction" }
many.each_slice(5) { |slice| slice.first << "!" }
counts = Hash.new(0)
6.times { |i| counts["key number #{i % 3} of counts"] += i }
same_again = [many, many, counts, counts]
# Compaction moves objects: the shim's tables keyed by class must not.
GC.compact if GC.respond_to?(:compact)
moved = [Node.new(+"after compaction", [1]), Doc.new, kid, left, holder]
moved << Duo.new(1, moved.size)
puts shared.size, text.size, list.size, counts.size, same_again.size, moved.size
