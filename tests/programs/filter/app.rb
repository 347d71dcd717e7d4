# A small app for filter tests: a helper module, a subtree, secrets.
module Helpers
  def self.fmt(value)
    "<#{value}>"
  end

  def self.each_twice(items)
    items.each { |i| yield i }
    items.each { |i| yield i }
  end
end

class Store
  def initialize(password)
    @password = password
  end

  def save(name, token)
    check(name)
    "saved #{name}"
  end

  def check(name)
    name.length
  end
end

def visit(item)
  item * 2
end

def login(user, password)
  secret = password.reverse
  "#{user}:#{secret.length}"
end

total = 0
Helpers.each_twice([1, 2]) { |i| total += visit(i) }
puts Helpers.fmt(total)
store = Store.new("hunter2")
puts store.save("a", "tok")
puts login("bob", "s3cret")
