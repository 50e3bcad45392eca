#!/usr/bin/env python3
"""Open N client connections to a proxy and hold them idle (scripts/bench.sh).

Usage: idle_conns.py HOST PORT N [--mode request|silent] [--sources K]

mode request (default): each connection sends one complete keep-alive
`GET /` and reads the whole response, then stays idle (what a keep-alive
client between requests looks like). mode silent: connect and send nothing.

Source addresses cycle over 127.0.1.1 .. 127.0.1.K (IP_BIND_ADDRESS_NO_PORT,
so the port is picked at connect time per 4-tuple) to keep clear of ephemeral
port exhaustion and TIME_WAIT left over from earlier cases.

Prints "ready <ok> <failed>" on stdout once all connections are set up, then
holds them until killed (SIGTERM/SIGINT).
"""
import argparse
import signal
import socket
import sys

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
REQ = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: idle-conns\r\n\r\n"


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before response headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None:
        raise ConnectionError("response without Content-Length")
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed inside response body")
        body += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--mode", choices=["request", "silent"], default="request")
    ap.add_argument("--sources", type=int, default=8)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()

    held, failed, first_err = [], 0, None
    ready = False

    def on_term(*_):
        if not ready:  # killed while still opening: say so (someone else's kill shows up here)
            print("terminated by a signal after %d connections" % len(held), file=sys.stderr, flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    i = 0
    while i < a.n:
        batch = []
        for _ in range(min(a.batch, a.n - i)):
            src = "127.0.1.%d" % (1 + i % a.sources)
            i += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((src, 0))
                s.settimeout(10)
                s.connect((a.host, a.port))
                if a.mode == "request":
                    s.sendall(REQ)
                batch.append(s)
            except OSError as e:
                failed += 1
                first_err = first_err or repr(e)
                s.close()
        for s in batch:
            try:
                if a.mode == "request":
                    read_response(s)
                held.append(s)
            except (OSError, ValueError) as e:
                failed += 1
                first_err = first_err or repr(e)
                s.close()
    ready = True
    print("ready %d %d" % (len(held), failed), flush=True)
    if first_err:
        print("first error: %s" % first_err, file=sys.stderr, flush=True)
    try:
        while True:
            signal.pause()  # hold until SIGTERM/SIGINT
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        for s in held:
            s.close()


if __name__ == "__main__":
    main()
