# oracle.rb: an independent recorder of what ctrec should show for a Ruby
# program, for tests/integration/test_ruby_oracle.py. Pure Ruby: a TracePoint
# on the program's own files, a fresh Binding at every event, values rendered
# with ctrec's capture rules (client/ruby/ctr_rb_value.c) by code written
# apart from it. No caching of any kind, so it stays a reference for
# optimisations of value capture.
#
#   ORACLE_OUT=dump.json ORACLE_LIMITS=depth,length,string \
#     ruby -r /abs/path/oracle.rb /abs/path/prog.rb
#
# The program's files are the Ruby files of its folder (helpers it
# requires included).
#
# The dump is a JSON array of steps, in the order each fiber ran them:
#   {"thread": n, "path": p, "line": l, "vars": [[name, value], ...]}
# where n numbers fibers (each is a thread of the trace, a thread's own
# code running in its root fiber) as they first step, the main one 0. A line event gives the visible locals; a method call (and a block
# run away from the frame that made it, as ctrec records it) gives the
# call-location step at its definition line, with self and the parameters.
#
# Values are [kind, [type_kind, type_name], payload]: "Int" n, "BigInt"
# [negative, base64], "Float" text, "Bool" b, "None" nil, "String" text,
# "Raw" text, "Seq" [values], "Struct" [[field, value], ...].
#
# Nothing here calls a method the program can override: every method used
# on the program's objects is taken as an UnboundMethod before the program
# runs and bound to the object explicitly.
require "json"

module CtrecOracle
  K_SEQ = 0
  K_STRUCT = 6
  K_INT = 7
  K_FLOAT = 8
  K_STRING = 9
  K_BOOL = 12
  K_RAW = 16
  K_NONE = 30
  BIGINT_MAX_BYTES = 4096

  KLASS = Kernel.instance_method(:class)
  IVARS = Kernel.instance_method(:instance_variables)
  IVAR_GET = Kernel.instance_method(:instance_variable_get)
  KIND_OF = Kernel.instance_method(:kind_of?)
  EQUAL = BasicObject.instance_method(:equal?)
  MOD_TO_S = Module.instance_method(:to_s)
  SUPERCLASS = Class.instance_method(:superclass)
  SYM_TO_S = Symbol.instance_method(:to_s)
  STR_BYTESLICE = String.instance_method(:byteslice)
  STR_BYTESIZE = String.instance_method(:bytesize)
  ARY_SIZE = Array.instance_method(:size)
  ARY_AT = Array.instance_method(:[])
  HASH_SIZE = Hash.instance_method(:size)
  HASH_EACH = Hash.instance_method(:each_pair)
  STRUCT_MEMBERS = Struct.instance_method(:members)
  STRUCT_AT = Struct.instance_method(:[])
  RANGE_BEGIN = Range.instance_method(:begin)
  RANGE_END = Range.instance_method(:end)
  RAT_NUM = Rational.instance_method(:numerator)
  RAT_DEN = Rational.instance_method(:denominator)
  TIME_SEC = Time.instance_method(:to_i)
  TIME_NSEC = Time.instance_method(:nsec)
  RE_SOURCE = Regexp.instance_method(:source)
  RE_OPTIONS = Regexp.instance_method(:options)
  EXC_TO_S = Exception.instance_method(:to_s)
  CPX_REAL = Complex.instance_method(:real)
  CPX_IMAG = Complex.instance_method(:imaginary)
  INT_ABS = Integer.instance_method(:abs)
  INT_TO_S = Integer.instance_method(:to_s)
  INT_NEG = Integer.instance_method(:negative?)
  FLOAT_TO_S = Float.instance_method(:to_s)
  MAIN = TOPLEVEL_BINDING.receiver

  INT64_MAX = 2**63 - 1

  class << self
    def start(out, limits, files)
      @out = out
      @depth, @length, @string = limits
      @files = files
      @steps = []
      @threads = {Fiber.current => 0}
      @stacks = {}
      @tp = TracePoint.new(:line, :call, :return, :b_call, :b_return) { |tp| event(tp) }
      at_exit { finish }
      @tp.enable
    end

    def finish
      @tp.disable
      File.write(@out, JSON.generate(@steps))
    end

    def fiber_no(fiber)
      @threads[fiber] ||= @threads.size
    end

    # Frames of every file count for telling where a block runs (a block
    # yielded by library code, Set#each say, is recorded as a call of its
    # own); steps come from the program's files only.
    def event(tp)
      mine = @files.include?(tp.path)
      stack = (@stacks[Fiber.current] ||= [])
      case tp.event
      when :line
        return unless mine
        b = tp.binding
        step(tp, locals(b, b.local_variables))
      when :call
        stack.push([tp.method_id, tp.defined_class, tp.self, true])
        return unless mine
        params = tp.parameters.map { |p| p[1] }.select { |n| n&.match?(/\A[a-z_]/) }
        step(tp, [["self", render(tp.self)]] + locals(tp.binding, params))
      when :b_call
        home = at_home(stack, tp)
        stack.push([tp.method_id, tp.defined_class, tp.self, !home])
        if mine && !home
          b = tp.binding
          step(tp, [["self", render(tp.self)]] + locals(b, b.local_variables))
        end
      when :return, :b_return
        stack.pop
      end
    end

    def locals(binding, names)
      names.map { |n| [n.to_s, render(binding.local_variable_get(n))] }
    end

    # A block runs at home when the innermost recorded frame is the method
    # that made it, on the same self; with no such frame, when it was made
    # at the top level (ctrec.c, ctr_rb_block_at_home).
    def at_home(stack, tp)
      known = stack.reverse_each.find { |f| f[3] }
      return tp.method_id.nil? if known.nil?
      known[0] == tp.method_id && EQUAL.bind_call(known[1], tp.defined_class) &&
        EQUAL.bind_call(known[2], tp.self)
    end

    def step(tp, vars)
      @steps << {"thread" => fiber_no(Fiber.current), "path" => tp.path,
                 "line" => tp.lineno, "vars" => vars}
    end

    def class_name(k)
      MOD_TO_S.bind_call(k)
    end

    def type(kind, name)
      [kind, name]
    end

    # A copy (byteslice always makes one): the program may change the
    # string later, and the dump is written at exit. The trace keeps valid
    # UTF-8 and shows every other byte as the text \xNN (ctr_json_str).
    def text(s)
      n = [STR_BYTESIZE.bind_call(s), @string].min
      t = STR_BYTESLICE.bind_call(s, 0, n).force_encoding(Encoding::UTF_8)
      t.scrub { |bad| bad.bytes.map { |c| format("\\x%02x", c) }.join }
    end

    def raw_class(v)
      name = class_name(KLASS.bind_call(v))
      ["Raw", type(K_RAW, name), "#<#{name[0, 240]}>"]
    end

    def render(v, visiting = [])
      return ["None", type(K_NONE, "NilClass"), nil] if EQUAL.bind_call(v, nil)
      if EQUAL.bind_call(v, true) || EQUAL.bind_call(v, false)
        return ["Bool", type(K_BOOL, "Bool"), EQUAL.bind_call(v, true)]
      end
      return ["Raw", type(K_RAW, "Object"), "main"] if EQUAL.bind_call(v, MAIN)
      klass = KLASS.bind_call(v)
      cname = class_name(klass)
      if EQUAL.bind_call(klass, Integer)
        return integer(v)
      elsif EQUAL.bind_call(klass, Float)
        return ["Float", type(K_FLOAT, "Float"), FLOAT_TO_S.bind_call(v)]
      elsif EQUAL.bind_call(klass, Symbol)
        return ["String", type(K_STRING, "Symbol"), text(SYM_TO_S.bind_call(v))]
      elsif KIND_OF.bind_call(v, String)
        return ["String", type(K_STRING, cname), text(v)]
      elsif KIND_OF.bind_call(v, Module)
        return ["Raw", type(K_RAW, cname), class_name(v)]
      end
      if visiting.any? { |o| EQUAL.bind_call(o, v) }
        return ["Raw", type(K_RAW, cname), "<cycle>"]
      end
      return raw_class(v) if visiting.size >= @depth
      inner = visiting + [v]
      if KIND_OF.bind_call(v, Array)
        n = [ARY_SIZE.bind_call(v), @length].min
        ["Seq", type(K_SEQ, cname), (0...n).map { |i| render(ARY_AT.bind_call(v, i), inner) }]
      elsif KIND_OF.bind_call(v, Hash)
        hash(v, cname, inner, false)
      elsif KIND_OF.bind_call(v, Rational)
        struct(cname, [["numerator", RAT_NUM.bind_call(v)],
                       ["denominator", RAT_DEN.bind_call(v)]], inner)
      elsif KIND_OF.bind_call(v, Time)
        struct(cname, [["sec", TIME_SEC.bind_call(v)], ["nsec", TIME_NSEC.bind_call(v)]], inner)
      elsif KIND_OF.bind_call(v, Regexp)
        struct(cname, [["source", RE_SOURCE.bind_call(v)], ["options", RE_OPTIONS.bind_call(v)]], inner)
      elsif KIND_OF.bind_call(v, Complex)
        struct(cname, [["real", CPX_REAL.bind_call(v)], ["imag", CPX_IMAG.bind_call(v)]], inner)
      elsif KIND_OF.bind_call(v, Range)
        struct(cname, [["begin", RANGE_BEGIN.bind_call(v)], ["end", RANGE_END.bind_call(v)]], inner)
      elsif KIND_OF.bind_call(v, Struct)
        members = STRUCT_MEMBERS.bind_call(v).first(@length)
        struct(cname, members.each_with_index.map { |m, i| [SYM_TO_S.bind_call(m), STRUCT_AT.bind_call(v, i)] }, inner)
      elsif named_ancestor?(klass, "Set") && KIND_OF.bind_call(IVAR_GET.bind_call(v, :@hash), Hash)
        hash(IVAR_GET.bind_call(v, :@hash), cname, inner, true)
      else
        fields = exception_message(v)
        names = IVARS.bind_call(v).first(@length)
        fields += names.map { |n| [SYM_TO_S.bind_call(n), IVAR_GET.bind_call(v, n)] }
        return raw_class(v) if fields.empty?
        struct(cname, fields, inner)
      end
    end

    # An exception shows its stored message first, when that is a String.
    # Exception#to_s returns that very String, or a new string (the class
    # name, or the message converted) each time otherwise.
    def exception_message(v)
      return [] unless KIND_OF.bind_call(v, Exception)
      m = EXC_TO_S.bind_call(v)
      EQUAL.bind_call(m, EXC_TO_S.bind_call(v)) ? [["message", m]] : []
    end

    def named_ancestor?(klass, name)
      while klass
        return true if class_name(klass) == name
        klass = SUPERCLASS.bind_call(klass)
      end
      false
    end

    def struct(cname, fields, inner)
      ["Struct", type(K_STRUCT, cname), fields.map { |n, x| [n, render(x, inner)] }]
    end

    # A Hash is a sequence of "Pair" structs (k, v), or of its keys for a Set;
    # pairs take no nesting level of their own.
    def hash(h, cname, inner, keys_only)
      left = [HASH_SIZE.bind_call(h), @length].min
      out = []
      HASH_EACH.bind_call(h) do |k, x|
        break if left.zero?
        left -= 1
        out << (keys_only ? render(k, inner) :
                ["Struct", type(K_STRUCT, "Pair"), [["k", render(k, inner)], ["v", render(x, inner)]]])
      end
      ["Seq", type(K_SEQ, cname), out]
    end

    def integer(v)
      t = type(K_INT, "Integer")
      mag = INT_ABS.bind_call(v)
      return ["Int", t, v] if mag <= INT64_MAX
      hex = INT_TO_S.bind_call(mag, 16)
      hex = "0" + hex if hex.size.odd?
      bytes = [hex].pack("H*")
      return ["Raw", t, "<integer of #{mag.bit_length} bits>"] if bytes.bytesize > BIGINT_MAX_BYTES
      ["BigInt", t, [INT_NEG.bind_call(v), [bytes].pack("m0")]]
    end
  end
end

# The program's files: every Ruby file in its folder but this one.
CtrecOracle.start(ENV.fetch("ORACLE_OUT"),
                  ENV.fetch("ORACLE_LIMITS").split(",").map { |x| Integer(x) },
                  Dir[File.join(File.dirname(File.expand_path($0)), "*.rb")] - [__FILE__])
