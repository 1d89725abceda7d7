"""Running one piece of async work in a forked child, and getting its result back.

Python plans on one CPU at a time (the GIL), and a family's full sync at 10k services is
mostly Python (~0.33 s of ~0.46 s; the kernel's share is ~0.13 s). kube-proxy runs its two
proxiers (IPv4, IPv6) on two CPUs; the nftables backend does the same by running the second
family's full sync in a child made with ``fork``: the child inherits the view and the planner
as they are (copy-on-write, nothing serialised on the way in) and does the work on a loop of
its own.

The work returns two things: a small *outcome* (how many operations it wrote), sent at once
over a pipe, and a *result* (the planner's state, ~10 MB pickled at 10k services), which the
child pickles only then, into a memory file the parent maps once the child has exited. So the
parent knows the work is done ~0.1 s before it can hold the result: :attr:`Child.done`,
then :attr:`Child.pickled`; :meth:`Child.result` unpickles it when asked.

The child is made to be quiet and short-lived: it forgets the parent's signal handlers (a
signal to it must not wake the parent's loop through the wakeup fd they share), dies with
the parent (``PR_SET_PDEATHSIG``), runs without the cyclic collector, and leaves with
``os._exit`` (no ``atexit``, no flushing of the parent's buffers, nothing closed on the
parent's connections). It must not use what the parent's other threads may hold at the
fork: the work opens its own sockets.

A failure in the child is raised in the parent by both futures:
:class:`~kpng.dataplane.nft.objects.NftError` as itself (the kernel refused something),
anything else as :class:`ChildFailed`, naming what the child raised, or the signal or exit
code it died of.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import mmap
import os
import pickle
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from kpng.dataplane.nft.objects import NftError
from kpng.runtime.gcpause import no_gc

Out = TypeVar("Out")
R = TypeVar("R")
PR_SET_PDEATHSIG = 1
_RESET = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
Work = Callable[[], Coroutine[Any, Any, tuple[Out, R]]]


class ChildFailed(RuntimeError):
    """The child raised something other than an ``NftError``, or died without a result."""


def can_fork() -> bool:
    """A second CPU to run on, and ``fork`` to make the child with."""
    return hasattr(os, "fork") and len(os.sched_getaffinity(0)) >= 2


@dataclass(slots=True)
class Child(Generic[Out, R]):
    pid: int
    pidfd: int  # the child's, closed once it is reaped: a signal never reaches a reused pid
    what: str
    done: asyncio.Future[Out]  # the work's outcome: it ended in the child
    pickled: asyncio.Future[bytes]  # then its result as the child pickled it, once it exited

    async def result(self) -> R:
        """The work's result, unpickled here, on the caller's loop (~0.05 s for 10 MB: only
        once asked, so not while the caller's own sync still runs)."""
        data = await self.pickled
        with no_gc():  # ~10^5 objects at once: no collections meanwhile
            return cast(R, _unpickle(data, self.what))

    def kill(self) -> None:
        """Stop the child if it still runs (its reaper thread then ends both futures)."""
        if not self.pickled.done():
            with contextlib.suppress(OSError):  # reaped (ESRCH), or the pidfd closed
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)


def start_in_child(work: Work[Out, R], what: str) -> Child[Out, R]:
    """``work()`` run in a forked child (call on the event loop). ``what`` names the work
    in errors. An ``OSError`` (no ``fork``, ``memfd_create`` or ``pidfd_open`` here: a
    seccomp profile may refuse them) leaves no child behind: do the work in-process."""
    loop = asyncio.get_running_loop()
    out = os.memfd_create("kpng-child-result", os.MFD_CLOEXEC)
    try:
        r, w = os.pipe()
    except OSError:
        os.close(out)
        raise
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        for fd in (r, w, out):
            os.close(fd)
        raise
    if pid == 0:  # pragma: no cover - the child; its outcome is checked in the parent
        os.close(r)
        _child(work, w, out, parent)
    os.close(w)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        os.kill(pid, signal.SIGKILL)  # not reaped yet: the pid is still the child's
        os.waitpid(pid, 0)
        os.close(r)
        os.close(out)
        raise
    child: Child[Out, R] = Child(pid, pidfd, what, loop.create_future(), loop.create_future())

    def outcome(value: Any, exc: BaseException | None) -> None:  # from the reaper thread
        loop.call_soon_threadsafe(_set, child.done, value, exc)

    reaper = asyncio.ensure_future(asyncio.to_thread(_reap, r, out, pid, what, outcome))
    reaper.add_done_callback(lambda f: _settle(child, f))
    return child


def _set(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(value)
    else:
        fut.set_exception(exc)
        fut.exception()  # retrieved: a caller may never await it


def _settle(child: Child[Any, Any], reaper: asyncio.Future[Any]) -> None:
    os.close(child.pidfd)
    exc: BaseException | None
    if reaper.cancelled():
        exc = ChildFailed(f"{child.what}: no longer waited for")
    else:
        exc = reaper.exception()
    _set(child.done, None, exc or ChildFailed(f"{child.what}: the child ended without an outcome"))
    _set(child.pickled, None if exc else reaper.result(), exc)


def _child(work: Work[Any, Any], w: int, out: int, parent: int) -> None:  # pragma: no cover
    code = 1
    try:
        gc.disable()
        signal.set_wakeup_fd(-1)
        for s in _RESET:
            signal.signal(s, signal.SIG_DFL)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the prctl
            os._exit(1)
        told = False
        try:
            outcome, result = asyncio.run(work())
            _write(w, pickle.dumps(("ok", outcome)))
            os.close(w)  # the parent reads the outcome to its end now, not at the exit
            told = True
            data = pickle.dumps(("ok", result), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # every failure goes to the parent
            data = pickle.dumps(
                ("error", isinstance(exc, NftError), f"{type(exc).__name__}: {exc}")
            )
            if not told:
                _write(w, data)
        _write(out, data)
        code = 0
    finally:
        os._exit(code)


def _write(fd: int, data: bytes) -> None:  # pragma: no cover - in the child
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _reap(
    r: int, out: int, pid: int, what: str, outcome: Callable[[Any, BaseException | None], None]
) -> bytes:
    """In a thread: the outcome (handed over at once), then the child's exit, its pickled
    result (unpickled by :meth:`Child.result`)."""
    try:
        first = _read_all(r)
        if first:
            try:
                outcome(_unpickle(first, what), None)
            except Exception as exc:
                outcome(None, exc)
        status = os.waitpid(pid, 0)[1]
        if not first:
            raise ChildFailed(f"{what}: the child {_died(status)} without a result")
        size = os.fstat(out).st_size
        if not size:
            raise ChildFailed(f"{what}: the child {_died(status)} before its result")
        with mmap.mmap(out, size, access=mmap.ACCESS_READ) as m:
            return m[:]
    finally:
        os.close(r)
        os.close(out)


def _read_all(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 16):
        parts.append(chunk)
    return b"".join(parts)


def _died(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def _unpickle(data: bytes, what: str) -> Any:
    got = cast(tuple[Any, ...], pickle.loads(data))
    if got[0] == "ok":
        return got[1]
    _, nft, message = got
    raise NftError(f"{what}: {message}") if nft else ChildFailed(f"{what}: {message}")
