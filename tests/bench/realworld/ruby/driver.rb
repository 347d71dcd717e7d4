# Shared by the Ruby drivers: loads a library from the copy in lib/ beside
# this file (run.sh puts it there), refuses an installed one, whose code the
# built-in filter rules would leave out, then renders ARGV[0]'s text
# ARGV[1] times and prints the last output's size and a digest of all.
$LOAD_PATH.unshift(File.join(__dir__, "lib"))
require "digest"

module Driver
  def self.run(feature)
    require feature
    lib = $LOADED_FEATURES.grep(%r{/#{Regexp.escape(feature)}\.rb\z}).first
    abort "#{$0}: #{feature} comes from #{lib}, not a copy in #{__dir__}" unless lib.start_with?(__dir__ + "/")
    text = File.read(ARGV[0], encoding: "UTF-8")
    digest = Digest::SHA256.new
    out = nil
    Integer(ARGV[1]).times do
      out = yield text
      digest << out
    end
    puts "#{out.bytesize} #{digest.hexdigest[0, 16]}"
  end
end
