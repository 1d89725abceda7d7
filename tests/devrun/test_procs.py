"""The dev runner's port check agrees with the servers about which ports are free."""

from __future__ import annotations

import socket

import pytest

from kpng_devrun.procs import free_ports, port_is_free


def _listener(port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen()
    return s


def test_a_listened_port_is_not_free() -> None:
    with _listener() as s:
        assert not port_is_free("127.0.0.1", s.getsockname()[1])


def test_a_port_whose_closed_connection_sits_in_time_wait_is_free() -> None:
    """What `make run` meets right after Ctrl-C: the server closed first, so its side of the
    connection waits in TIME_WAIT on the port; a server with SO_REUSEADDR may listen again."""
    listener = _listener()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    listener.close()
    served.close()  # the server's side closes first: it is the one left in TIME_WAIT
    assert client.recv(1) == b""
    client.close()
    # the port is really held by TIME_WAIT (60 s on Linux): a plain bind is refused
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert port_is_free("127.0.0.1", port)
    with _listener(port) as again:  # and a server does listen there: the check told the truth
        assert again.getsockname()[1] == port


def test_ports_picked_together_are_all_different_and_free() -> None:
    """A test that starts several servers takes their ports at once: one at a time, the
    kernel may hand a just-closed port out again (two servers of a NATS cluster once got
    the same one, and one of them exited)."""
    ports = free_ports(64)
    assert len(set(ports)) == 64
    assert all(port_is_free("127.0.0.1", p) for p in ports)
