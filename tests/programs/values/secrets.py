"""A secret passed as an argument, for the value rule tests. The secret is
built at run time so that its text is nowhere in this source (which the
trace copies): a trace that holds it leaked it.

    python3 secrets.py            # calls that see the secret in several ways
    python3 secrets.py wait GO    # waits inside a call until the file GO exists
"""
import os
import sys
import time


class Auth:
    @staticmethod
    def login(user, token):
        n = len(token)
        copy = token
        header = "Bearer " + token

        def inner():
            return token
        inner()
        seen = [token for _ in range(1)]
        return n + len(copy) + len(seen) + len(header) - 14

    @staticmethod
    def check(token):
        token = token.upper()
        return len(token)

    @staticmethod
    def echo(token):
        return token

    @staticmethod
    def wait(token, go):
        print("waiting", flush=True)
        while not os.path.exists(go):
            time.sleep(0.02)
        return len(token)


class Client:
    def __init__(self, token):
        self.token = token


def plain(user, secret):
    return len(secret)


if len(sys.argv) > 1 and sys.argv[1] == "wait":
    print(Auth.wait("tok" + str(6 * 7) + "en", sys.argv[2]))
else:
    print(Auth.login("bob", "tok" + str(6 * 7) + "en"))
    print(Auth.check("tok" + str(6 * 7) + "en"))
    print(len(Auth.echo("tok" + str(6 * 7) + "en")))
    print(plain("bob", "visible" + str(6 * 7)))
    client = Client("tok" + str(6 * 7) + "en")
    print(len(client.token))
