"""Requests from inside a namespace, for tests and `make run`.

python3 podclient.py once PROTO IP PORT [SPORT]     -> the answer, "refused" or "timeout"
python3 podclient.py stream PROTO IP PORT SECONDS INTERVAL
    -> one line per request: "<elapsed> <answer>", then "done"
"""

from __future__ import annotations

import socket
import sys
import time


def request(proto: str, ip: str, port: int, sport: int = 0, timeout: float = 2.0) -> str:
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
                s.sendall(b"hi\n")
            else:
                s.sendto(b"hi\n", (ip, port))
            return s.recv(200).decode().strip() or "empty"
        except ConnectionRefusedError:
            return "refused"
        except TimeoutError:
            return "timeout"
        except OSError as exc:
            return f"error {exc.errno}"


def stream(proto: str, ip: str, port: int, seconds: float, interval: float) -> None:
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        print(f"{elapsed:.2f} {request(proto, ip, port, timeout=1.0)}", flush=True)
        time.sleep(interval)
    print("done", flush=True)


def main(argv: list[str]) -> None:
    mode, proto, ip, port = argv[0], argv[1], argv[2], int(argv[3])
    if mode == "once":
        print(request(proto, ip, port, int(argv[4]) if len(argv) > 4 else 0))
    else:
        stream(proto, ip, port, float(argv[4]), float(argv[5]))


if __name__ == "__main__":
    main(sys.argv[1:])
