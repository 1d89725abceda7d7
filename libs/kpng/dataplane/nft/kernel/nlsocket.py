"""The netlink socket to nf_tables: the only module that opens one.

A socket made in another network namespace stays there: :func:`open_socket` enters the
namespace in a short-lived thread (``setns`` moves only the calling thread), opens the
socket and leaves the rest of the process where it was.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable

from kpng.dataplane.nft.netlink.batch import (
    NLMSG_DONE,
    Answer,
    Batch,
    answers,
    dump_elements,
    dump_raw,
    dump_request,
)
from kpng.dataplane.nft.netlink.codec import Layout
from kpng.dataplane.nft.netlink.read import messages
from kpng.dataplane.nft.objects import Element, NftError, Table

Message = tuple[int, bytes, int, int]  # (type, buffer, attributes start, end)

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
CLONE_NEWNET = 0x40000000
RCVBUF = 8 << 20


def _open() -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors without the whole message
        s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # and with the offending attribute
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        s.bind((0, 0))
    except OSError:
        s.close()
        raise
    return s


def open_socket(netns: str = "") -> socket.socket:
    """A NETLINK_NETFILTER socket in this namespace, or in the named one (``ip netns``)."""
    if not netns:
        return _open()
    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
                made.append(_open())
            finally:
                os.close(fd)
        except BaseException as e:  # handed to the caller's thread
            made.append(e)

    t = threading.Thread(target=enter, name=f"netns-{netns}")
    t.start()
    t.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


class NetlinkSocket:
    """Sends element batches and dumps sets; blocking calls, each a few kernel round trips."""

    def __init__(self, netns: str = "") -> None:
        self.netns = netns
        self._sock: socket.socket | None = None
        self._sndbuf = 0
        self._buf = bytearray(1 << 20)
        self.seq = 1

    @property
    def sock(self) -> socket.socket:
        if self._sock is None:
            self._sock = open_socket(self.netns)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send(self, batch: Batch) -> None:
        """Send a batch built with sequence numbers from :attr:`seq`; raise an
        :class:`NftError` naming the first element the kernel refused."""
        data = b"".join(batch.parts)
        if len(data) + 4096 > self._sndbuf:
            self._sndbuf = len(data) + (1 << 20)
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, self._sndbuf)
        self.seq += len(batch.messages) + len(batch.labels) + 2
        self.sock.sendto(data, (0, 0))
        # nfnetlink runs the batch inside sendto: every answer is queued by now
        got = self._drain()
        errors = [a for a in got if a.error]
        if errors:
            raise _error(batch, errors[0], len(errors))
        acked = {a.seq for a in got}
        missing = [seq for seq in batch.messages if seq not in acked]
        if missing:
            raise NftError(f"no answer to {len(missing)} of {len(batch.messages)} messages")

    def _recv(self, flags: int = 0) -> bytes:
        n = self.sock.recv_into(self._buf, len(self._buf), flags)
        return bytes(memoryview(self._buf)[:n])

    def _drain(self) -> list[Answer]:
        out: list[Answer] = []
        while True:
            try:
                buf = self._recv(socket.MSG_DONTWAIT)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    raise NftError("netlink answers overflowed the receive buffer") from e
                raise
            out.extend(answers(buf))

    def dump(self, table: Table, lay: Layout) -> list[Element]:
        """Every element of one set."""
        seq = self.seq
        self.seq += 1
        self.sock.sendto(dump_request(table, lay.name, seq), (0, 0))
        out: list[Element] = []
        while not dump_elements(lay, self._recv(), out):
            pass
        return out

    def dump_raw(self, table: Table, lay: Layout) -> list[bytes]:
        """Every element of one set as it would be sent (``NFTA_LIST_ELEM``), not decoded."""
        seq = self.seq
        self.seq += 1
        self.sock.sendto(dump_request(table, lay.name, seq), (0, 0))
        out: list[bytes] = []
        while not dump_raw(lay, self._recv(), out):
            pass
        return out

    def dump_messages(self, request: Callable[[int], bytes]) -> list[Message]:
        """The messages of a dump (the request is made for a sequence number)."""
        seq = self.seq
        self.seq += 1
        self.sock.sendto(request(seq), (0, 0))
        out: list[Message] = []
        while True:
            buf = self._recv()
            for kind, start, end in messages(buf):
                if kind == NLMSG_DONE:
                    return out
                out.append((kind, buf, start, end))


def _error(batch: Batch, first: Answer, count: int) -> NftError:
    m = batch.messages.get(first.seq)
    where = batch.labels.get(first.seq, "the batch")
    if m is not None:
        e = batch.element_at(first.seq, first.offset) if first.offset >= 0 else None
        what = f"element {e.text}" if e is not None else f"one of {len(m.elements)} elements"
        where = f"{m.verb} {what} in set {m.set}"
    detail = f" ({first.message})" if first.message else ""
    return NftError(
        f"kernel refused {where}: {os.strerror(first.error)}{detail}"
        f"; {count} message(s) failed, nothing applied"
    )
