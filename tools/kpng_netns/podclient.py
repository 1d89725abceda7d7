"""Requests from inside a namespace, for tests and `make run`.

python3 podclient.py once PROTO IP PORT [SPORT]     -> the answer, "refused" or "timeout"
python3 podclient.py port tcp IP PORT    -> the answer with the pod port that served it
python3 podclient.py spread tcp IP PORT COUNT [SECONDS]
    -> COUNT new connections (fewer if SECONDS pass first), one line each:
       "<wall-clock time> <pod address that served>"
python3 podclient.py stream PROTO IP PORT SECONDS INTERVAL
    -> one line per request: "<elapsed> <answer>", then "done"
python3 podclient.py repeat PROTO IP PORT COUNT
    -> COUNT answers, one a line (fewer: it stops after a "timeout")
python3 podclient.py echo tcp IP PORT SIZE
    -> "<answer> ok <SIZE>" when SIZE random bytes came back whole, else what came back

UDP sockets are connected, so that an ICMP port unreachable (a reject) reads "refused".
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time


def request(
    proto: str, ip: str, port: int, sport: int = 0, timeout: float = 2.0, hello: bytes = b"hi\n"
) -> str:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, kind) as s:
        s.settimeout(timeout)
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", sport))
        try:
            if proto == "tcp":
                s.connect((ip, port))
                s.sendall(hello)
            else:
                s.connect((ip, port))
                s.send(b"hi\n")
            return s.recv(200).decode().strip() or "empty"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return f"error {exc.errno}"


def echo(ip: str, port: int, size: int, timeout: float = 20.0) -> str:
    """Send ``size`` random bytes through the pod server's ECHO mode; check they come back."""
    data = os.urandom(size)
    received = bytearray()
    with socket.create_connection((ip, port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"ECHO {size}\n".encode())
        sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
        sender.start()  # send and receive at once: neither side's buffers need to hold it all
        try:
            while chunk := s.recv(1 << 16):
                received += chunk
        except OSError as exc:
            return f"error after {len(received)} bytes: {exc!r}"
        sender.join(timeout)
    head, _, body = bytes(received).partition(b"\n")
    if body == data:
        return f"{head.decode()} ok {size}"
    same = next((i for i, (a, b) in enumerate(zip(body, data, strict=False)) if a != b), None)
    return f"{head.decode()} mismatch: {len(body)} of {size} bytes, first difference at {same}"


def stream(proto: str, ip: str, port: int, seconds: float, interval: float) -> None:
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        print(f"{elapsed:.2f} {request(proto, ip, port, timeout=1.0)}", flush=True)
        time.sleep(interval)
    print("done", flush=True)


def main(argv: list[str]) -> None:
    mode, proto, ip, port = argv[0], argv[1], argv[2], int(argv[3])
    if mode == "echo":
        print(echo(ip, port, int(argv[4])))
    elif mode == "repeat":
        for _ in range(int(argv[4])):
            print(answer := request(proto, ip, port), flush=True)
            if answer == "timeout":
                break
    elif mode == "spread":
        end = time.monotonic() + (float(argv[5]) if len(argv) > 5 else float("inf"))
        for _ in range(int(argv[4])):
            if time.monotonic() > end:
                break
            served = request(proto, ip, port, hello=b"ADDR\n")
            print(f"{time.time():.3f} {served}", flush=True)
    elif mode == "port":
        print(request(proto, ip, port, hello=b"PORT\n"))
    elif mode == "once":
        print(request(proto, ip, port, int(argv[4]) if len(argv) > 4 else 0))
    else:
        stream(proto, ip, port, float(argv[4]), float(argv[5]))


if __name__ == "__main__":
    main(sys.argv[1:])
