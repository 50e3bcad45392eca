"""keepalive_load.py PORT N: exactly N keep-alive GETs to 127.0.0.1:PORT over 8 connections,
8 in flight; every response must be a 200; a connection the proxy closes is reopened.
Used by scripts/bench-instructions.sh, where a fixed request count matters, not speed."""
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])


def conn():
    return socket.create_connection(("127.0.0.1", port))


conns = [conn() for _ in range(8)]

req = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: load\r\nAccept: */*\r\n\r\n"


def read_resp(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed mid-response")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    hl = head.lower()
    cl = int([l.split(b":")[1] for l in hl.split(b"\r\n") if l.startswith(b"content-length")][0])
    while len(rest) < cl:
        d = s.recv(65536)
        if not d:
            raise SystemExit("closed mid-body")
        rest += d
    assert head.startswith(b"HTTP/1.1 200"), head
    return b"connection: close" in hl


done = 0
while done < n:
    k = min(8, n - done)
    for s in conns[:k]:
        s.sendall(req)
    for i in range(k):
        if read_resp(conns[i]):
            conns[i].close()
            conns[i] = conn()
    done += k
print(done)
