# Required by frames_and_scopes.rb: a file's own top level between the
# requiring file's lines, and a method defined here that changes its
# argument in place.
helper_local = [:helper]
helper_local << helper_local.size

def stamp(list, mark)
  seen = list.size
  list << mark
  seen
end
