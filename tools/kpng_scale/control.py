"""The benchmark's own control messages: JSON requests and replies over the same NATS."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kpng.bus.flags import bus_auth
from kpng.bus.protocol import Bus, Subscription
from kpng.runtime.config import parse_args
from kpng.runtime.process import run, setup_logging

log = logging.getLogger(__name__)
WATCHER = "kpngscale.ctl.watcher"
AGENTS = "kpngscale.ctl.agents"
Json = dict[str, Any]
Handler = Callable[[Json], Awaitable[Json]]


async def request(
    bus: Bus, subject: str, body: Json | None = None, replies: int = 1, timeout: float = 30.0
) -> list[Json]:
    """Ask ``subject`` and gather ``replies`` answers (raises TimeoutError if fewer come)."""
    inbox = bus.new_inbox()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    sub = await bus.subscribe(inbox, lambda data, s, r: queue.put_nowait(data))
    try:
        await bus.publish(subject, json.dumps(body or {}).encode(), reply=inbox)
        out: list[Json] = []
        async with asyncio.timeout(timeout):
            while len(out) < replies:
                data = await queue.get()
                if data:  # an empty payload is NATS's "no responders": keep waiting
                    answer = json.loads(data)
                    if "error" in answer:
                        raise RuntimeError(f"{subject}: {answer['error']}")
                    out.append(answer)
        return out
    finally:
        await sub.unsubscribe()


async def serve(bus: Bus, subject: str, handler: Handler) -> Subscription:
    async def on_request(data: bytes, subj: str, reply: str) -> None:
        try:
            result = await handler(json.loads(data or b"{}"))
        except Exception as exc:  # the benchmark must hear of it rather than time out
            log.exception("control request on %s failed", subj)
            result = {"error": f"{type(exc).__name__}: {exc}"}
        if reply:
            await bus.publish(reply, json.dumps(result).encode())

    return await bus.subscribe(subject, on_request)


class GcMeter:
    """Time spent in the cyclic garbage collector, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.total_s = 0.0
        self.max_s = 0.0
        self.collections = 0
        # (wall time at the end, pause, CPU time of the pause) for pauses >= 10 ms: on 2 busy
        # cores a pause's wall time includes time the process waited for a core
        self.long: list[tuple[float, float, float]] = []
        self._started = 0.0
        self._cpu = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started, self._cpu = time.perf_counter(), time.process_time()
            return
        pause = time.perf_counter() - self._started
        self.total_s += pause
        self.max_s = max(self.max_s, pause)
        self.collections += 1
        if pause >= 0.01 and len(self.long) < 10_000:
            self.long.append((time.time(), pause, time.process_time() - self._cpu))


GC_METER = GcMeter()
gc.callbacks.append(GC_METER)


def process_usage() -> Json:
    """CPU seconds so far, current and peak resident memory of this process (bytes), and
    the garbage collector's pauses (total and longest, seconds)."""
    with open("/proc/self/statm") as f:
        rss_pages = int(f.read().split()[1])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "rss_bytes": rss_pages * os.sysconf("SC_PAGE_SIZE"),
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "gc_s": GC_METER.total_s,
        "gc_max_pause_s": GC_METER.max_s,
        "gc_collections": GC_METER.collections,
        "gc_long_pauses": GC_METER.long,
    }


def profiled(main: Callable[[], int]) -> int:
    """Run ``main`` under cProfile when KPNG_SCALE_PROFILE names a directory (for us)."""
    where = os.environ.get("KPNG_SCALE_PROFILE")
    if not where:
        return main()
    import cProfile

    profile = cProfile.Profile()
    try:
        return profile.runcall(main)
    finally:
        profile.dump_stats(os.path.join(where, f"{os.getpid()}.prof"))


def run_process(
    p: argparse.ArgumentParser, serve: Callable[[argparse.Namespace], Awaitable[None]]
) -> int:
    """A scale process's main: parse ``p`` (plus ``--log-level``), then run ``serve`` until a
    signal, profiled when asked."""
    p.add_argument("--log-level", default="warning")
    args = parse_args(p)  # KPNG_* variables too (kpng.runtime.config)
    setup_logging(args.log_level)
    if hasattr(args, "nats_insecure"):  # the bus flags (kpng.bus.flags): checked once here
        args.auth = bus_auth(args, p)
    return profiled(lambda: run(lambda: serve(args)))
