"""The watcher process of the benchmark: the real Publisher, fed by a synthetic source.

``python -m kpng_scale.watcher --nats URL --nodes N --services S --endpoints E`` loads the
synthetic cluster as the initial list, then waits for control requests: ``churn`` feeds
endpoint changes at a rate through the source (the Publisher's own consume loop handles
them), ``stats`` reports CPU, memory and fan-out figures, ``rawbench`` republishes the
delta messages it sent with bare nats-py publishes to compare rates.

For the failover phase: ``state`` writes the changes made so far to a file that a new
watcher process replays (``--replay FILE``: the same cluster, as a restarted watcher lists
it); ``--standby`` starts it with its gate closed (views kept current, nothing published,
no snapshot answered) until ``lead`` opens it, as the election does when the lease is won;
``--control`` gives it its own control subjects meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict
from pathlib import Path

from kpng.bus.codec import Delta, decode
from kpng.bus.flags import add_bus_arguments
from kpng.bus.nats import NatsBus, connect
from kpng.bus.protocol import Bus
from kpng.fanout.fanout import Outgoing
from kpng.source import Replace, SourceEvent, SourceStats, Synced, Upsert
from kpng_scale import control
from kpng_scale.synth import Cluster, Spec
from kpng_watcher.publisher import Publisher, PublisherSettings

log = logging.getLogger(__name__)
KEEP_BATCHES = 50
RAW_BYTES = 64 << 20  # the raw publish comparison materialises at most this much


class FeedSource:
    """The initial list, then whatever the benchmark puts in the queue."""

    def __init__(self, cluster: Cluster) -> None:
        self.stats = SourceStats()
        self.cluster = cluster
        self.queue: asyncio.Queue[SourceEvent] = asyncio.Queue()

    async def events(self) -> AsyncIterator[SourceEvent]:
        yield Replace(self.cluster.objects())
        yield Synced()
        while True:
            yield await self.queue.get()


class MeasuredPublisher(Publisher):
    """The real Publisher, timing its flushes and snapshot replies."""

    def __init__(
        self, bus: Bus, source: FeedSource, settings: PublisherSettings, standby: bool = False
    ) -> None:
        super().__init__(bus, source, settings, on_batch=self._batch_sent, gate=self._leading)
        self.leading = not standby
        self.lead_at = 0.0  # when ``lead`` opened the gate (a standby's takeover)
        self.ready_at = 0.0  # when the initial load was complete
        # bytes this watcher moved to and from node subjects: deltas and ticks it sent,
        # snapshot replies (full, catch-up or rebase) and the requests it answered
        self.sent_bytes = 0
        self.reply_bytes = 0
        self.request_bytes = 0
        self.flush_seconds = 0.0
        self.flush_messages = 0
        self.snapshot_seconds = 0.0
        self.snapshot_requests = 0
        self.sent: list[Sequence[Outgoing]] = []
        self.flushed = asyncio.Event()

    async def flush(self) -> None:
        started = time.perf_counter()
        try:
            await super().flush()
        finally:
            self.flush_seconds += time.perf_counter() - started
            self.flushed.set()

    def _leading(self) -> bool:
        return self.leading

    def lead(self) -> None:
        self.leading, self.lead_at = True, time.time()
        self.take_over()

    def handle(self, event: SourceEvent) -> None:
        synced = self.synced
        super().handle(event)
        if self.synced and not synced:
            self.ready_at = time.time()

    async def _send(self, out: list[Outgoing]) -> None:
        if self.gate():
            self.sent_bytes += sum(o.size for o in out)
        await super()._send(out)

    async def _reply(self, reply: str, chunks: list[bytes]) -> None:
        if self.gate():
            self.reply_bytes += sum(len(c) for c in chunks)
        await super()._reply(reply, chunks)

    def _batch_sent(self, out: Sequence[Outgoing]) -> None:
        # only a batch's deltas: ticks sent meanwhile are not part of it
        self.flush_messages += len(out)
        self.sent = [*self.sent[-KEEP_BATCHES + 1 :], out]

    async def _on_snapshot_request(self, data: bytes, subject: str, reply: str) -> None:
        if not self.gate():
            return  # the leader answers
        self.request_bytes += len(data)
        started = time.perf_counter()
        await super()._on_snapshot_request(data, subject, reply)
        self.snapshot_seconds += time.perf_counter() - started
        self.snapshot_requests += 1


class Controller:
    def __init__(self, bus: NatsBus, publisher: MeasuredPublisher, source: FeedSource) -> None:
        self.bus, self.publisher, self.source = bus, publisher, source
        self.changes = 0

    async def stats(self, body: control.Json) -> control.Json:
        p = self.publisher
        return {
            "synced": p.synced,
            "usage": control.process_usage(),
            "fanout": asdict(p.fanout.stats),
            "batches": p.stats.batches,
            "publish_errors": p.stats.publish_errors,
            "flush_seconds": p.flush_seconds,
            "flush_messages": p.flush_messages,
            "snapshot_seconds": p.snapshot_seconds,
            "snapshot_requests": p.snapshot_requests,
            "changes": self.changes,
            "seqs": dict(p.fanout.seq) if body.get("seqs") else {},
            "epoch": p.epoch,
            "leading": p.leading,
            "ready_at": p.ready_at,
            "lead_at": p.lead_at,
            "sent_bytes": p.sent_bytes,
            "reply_bytes": p.reply_bytes,
            "request_bytes": p.request_bytes,
        }

    async def state(self, body: control.Json) -> control.Json:
        """Write the changes made so far to ``body["path"]`` (for ``--replay``)."""
        text = json.dumps(self.source.cluster.log)
        await asyncio.to_thread(Path(body["path"]).write_text, text)
        return {"changes": len(self.source.cluster.log)}

    async def lead(self, body: control.Json) -> control.Json:
        """Take over (a standby that won the lease): publish from now on."""
        self.publisher.lead()
        return {"lead_at": self.publisher.lead_at}

    async def churn(self, body: control.Json) -> control.Json:
        rate, duration = float(body["rate"]), float(body["duration"])
        started = time.time()
        done = 0
        while (now := time.time()) < started + duration:
            due = int((now - started) * rate)
            while done < due:
                self.source.queue.put_nowait(Upsert(self.source.cluster.change(time.time())))
                done += 1
            await asyncio.sleep(0.002)
        self.changes += done
        return {"changes": done, "started": started, "ended": time.time()}

    async def probe(self, body: control.Json) -> control.Json:
        """Single changes to node-independent services, one batch each: how many encodings
        per operation (1.0: each distinct operation encoded once, whatever the node count)."""
        p, stats = self.publisher, self.publisher.fanout.stats
        encodings = ops = samples = 0
        for _ in range(int(body.get("changes", 20))):
            before = (p.stats.batches, p.stats.coalesced_changes, stats.encodings)
            self.source.queue.put_nowait(Upsert(self.source.cluster.change(time.time(), True)))
            while p.stats.batches == before[0]:
                p.flushed.clear()
                await p.flushed.wait()
            if (p.stats.batches, p.stats.coalesced_changes) != (before[0] + 1, before[1] + 1):
                continue  # batched with a change still pending from before: not a sample
            samples += 1
            encodings += stats.encodings - before[2]
            ops += sum(_distinct_ops(batch) for batch in p.sent[-1:])
        return {"encodings": encodings, "distinct_ops": ops, "samples": samples}

    async def rawbench(self, body: control.Json) -> control.Json:
        """The delta messages last sent, published again with nothing but nats-py."""
        subjects = self.bus.subjects
        messages: list[tuple[str, bytes]] = []
        size = 0
        for batch in reversed(self.publisher.sent):  # the latest, up to RAW_BYTES in all
            if messages and size + sum(o.size for o in batch) > RAW_BYTES:
                break
            for o in batch:
                subject = subjects.global_delta if o.node is None else subjects.node_delta(o.node)
                messages.append((subject, o.data))
                size += o.size
        nc = self.bus.nc
        started = time.perf_counter()
        for subject, data in messages:
            await nc.publish(subject, data)
        elapsed = time.perf_counter() - started
        await nc.flush()
        return {"messages": len(messages), "seconds": elapsed}


def _distinct_ops(batch: Sequence[Outgoing]) -> int:
    """Operations in a batch's global message plus in one node's message."""
    counts = {o.node is None: len(_ops(o)) for o in batch}
    return sum(counts.values())


def _ops(out: Outgoing) -> list[object]:
    message = decode(out.data, "global" if out.node is None else "node")
    return list(message.ops) if isinstance(message, Delta) else []


async def serve(args: argparse.Namespace) -> None:
    spec = Spec(args.nodes, args.services, args.endpoints, args.seed)
    cluster = Cluster(spec)
    if args.replay is not None:
        cluster.replay(json.loads(args.replay.read_text()))
    source = FeedSource(cluster)
    bus = await connect(args.nats, name="kpng-scale-watcher", auth=args.auth)
    try:
        settings = PublisherSettings(coalesce=args.coalesce_ms / 1000)
        publisher = MeasuredPublisher(bus, source, settings, standby=args.standby)
        controller = Controller(bus, publisher, source)
        for command in ("stats", "churn", "rawbench", "probe", "state", "lead"):
            await control.serve(bus, f"{args.control}.{command}", getattr(controller, command))
        await publisher.run()
    finally:
        await bus.close()


def main() -> int:
    p = argparse.ArgumentParser(prog="kpng_scale.watcher")
    add_bus_arguments(p)
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--services", type=int, required=True)
    p.add_argument("--endpoints", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--coalesce-ms", type=float, default=100.0)
    p.add_argument("--replay", type=Path, help="changes to make first (from ``state``)")
    p.add_argument("--standby", action="store_true", help="publish nothing until ``lead``")
    p.add_argument("--control", default=control.WATCHER, help="control subjects' prefix")
    return control.run_process(p, serve)


if __name__ == "__main__":
    raise SystemExit(main())
