"""Child processes with log files, started and always stopped together (tests use it too)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


def free_port(host: str = "127.0.0.1") -> int:
    (port,) = free_ports(1, host)
    return port


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` free ports, all different: each socket stays bound until all are picked
    (ports picked one at a time may repeat: the kernel can hand a just-closed one out again,
    and two servers of one test then fight over it)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_is_free(host: str, port: int) -> bool:
    """Whether a server may listen on ``host:port``. It binds with SO_REUSEADDR as the servers
    do (uvicorn, nats-server, http.server), so closed connections left in TIME_WAIT by the
    previous run don't make a port that is free look taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def venv_bin(name: str) -> str:
    """A console script installed beside this Python (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / name
    if not candidate.exists():
        raise FileNotFoundError(f"{candidate} not found: is the project installed (make venv)?")
    return str(candidate)


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it while it runs
        try:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.running:
            assert self.process is not None
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """Processes started together, stopped in reverse order; a context manager."""

    workdir: Path
    children: dict[str, Child] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> Child:
        self.workdir.mkdir(parents=True, exist_ok=True)
        child = Child(name, argv, self.workdir / f"{name}.log")
        self.children[name] = child
        child.start()
        return child

    def stop(self) -> None:
        for child in reversed(list(self.children.values())):
            child.stop()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def nats_server_argv(port: int, config: Path | None = None) -> list[str]:
    argv = [venv_bin("nats-server"), "-a", "127.0.0.1", "-p", str(port)]
    if config is not None:
        argv += ["-c", str(config)]
    return argv
