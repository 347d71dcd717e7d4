"""A stand-in for ctrecd that answers HELLO with WELCOME and discards
everything else, so python_bench.sh can time the shim without the daemon's
rendering. Usage: python3 sink.py SOCKET [VALUES] (runs until killed);
VALUES is the WELCOME "values" mode (all, args, none; default all)."""
import os
import socket
import struct
import sys
import threading


def mp_str(s):
    b = s.encode()
    return bytes([0xa0 | len(b)]) + b


def mp_uint(n):
    return b"\xce" + struct.pack(">I", n)


VALUES = sys.argv[2] if len(sys.argv) > 2 else "all"
WELCOME = (b"\x92\x02" + bytes([0x80 | 7]) + mp_str("session") + mp_uint(1) +
           mp_str("state") + mp_str("recording") + mp_str("flush_ms") + mp_uint(100) +
           mp_str("max_depth") + mp_uint(3) + mp_str("max_length") + mp_uint(32) +
           mp_str("max_string") + mp_uint(1000) + mp_str("values") + mp_str(VALUES))


def serve(conn):
    conn.recv(65536)  # the HELLO frame (small, arrives whole)
    conn.sendall(struct.pack("<I", len(WELCOME)) + WELCOME)
    while conn.recv(1 << 20):
        pass
    conn.close()


def main():
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


main()
