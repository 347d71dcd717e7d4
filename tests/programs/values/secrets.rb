# A secret passed as an argument, for the value rule tests. The secret is
# built at run time so that its text is nowhere in this source (which the
# trace copies): a trace that holds it leaked it.
#
#   ruby secrets.rb            # calls that see the secret in several ways
#   ruby secrets.rb wait GO    # waits inside a call until the file GO exists
class Auth
  def self.login(user, token)
    n = token.length
    copy = token
    header = "Bearer " + token
    [1].each { |i| n += i; seen = token }
    helper = lambda { token }
    helper.call
    n + copy.length + header.length - 14
  end

  def self.check(token)
    token = token.upcase
    token.length
  end

  def self.echo(token)
    token
  end

  def self.wait(token, go)
    puts "waiting"
    $stdout.flush
    # A Ruby call each time round: a paused Ruby shim wakes up at calls.
    until ready?(go)
      sleep 0.02
    end
    token.length
  end

  def self.ready?(go)
    File.exist?(go)
  end
end

class Client
  attr_reader :token

  def initialize(token)
    @token = token
  end
end

def plain(user, secret)
  secret.length
end

if ARGV[0] == "wait"
  puts Auth.wait("tok" + (6 * 7).to_s + "en", ARGV[1])
else
  puts Auth.login("bob", "tok" + (6 * 7).to_s + "en")
  puts Auth.check("tok" + (6 * 7).to_s + "en")
  puts Auth.echo("tok" + (6 * 7).to_s + "en").length
  puts plain("bob", "visible" + (6 * 7).to_s)
  client = Client.new("tok" + (6 * 7).to_s + "en")
  puts client.token.length
end
