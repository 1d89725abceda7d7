"""What one message costs an agent: decode plus apply, for the costliest shapes of valid
operations (and a few bombs), each as large as a message may be (kpng.bus.bounds.MAX_MESSAGE).

Valid operations cost most per byte (an object or two per 10-20 bytes); a bomb is refused
before that. The agent's path: ``decode`` without an OpCache, then ``apply_in_place`` on a
view whose digest it keeps.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kpng.bus.bounds import MAX_MESSAGE
from kpng.bus.codec import (
    Delta,
    MalformedMessage,
    SnapshotChunk,
    decode,
    encode_op,
    ops_array,
    pack_compressed_chunk,
    pack_delta,
    packb,
)
from kpng.bus.compression import compress
from kpng.bus.wire import endpoints_to_wire
from kpng.diff import DeleteNode, SetEndpoint, SetNode, SetService, View, apply_in_place
from kpng.model import (
    EndpointPort,
    Node,
    PortMarks,
    Service,
    ServicePort,
    ServiceType,
    TransportProtocol,
    ViewEndpoint,
)

MAX_PAYLOAD = 1 << 20  # the server's default: what an agent passes as max_inflated
ROOM = MAX_MESSAGE - 200  # the operations of one message (its header around them)
KEY = "bench/s"


def _ip(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def _service(name: str = "s", **fields: Any) -> Service:
    fields.setdefault("ports", (ServicePort("", TransportProtocol.TCP, 80, 8080),))
    return Service("bench", name, ServiceType.CLUSTER_IP, cluster_ips=("10.96.0.1",), **fields)


def _fill(first: list[bytes], make: Callable[[int], bytes], room: int = ROOM) -> list[bytes]:
    """``first``, then ``make(0)``, ``make(1)``... while they fit ``room`` bytes."""
    ops, size, i = list(first), sum(len(o) for o in first), 0
    while size + len(op := make(i)) <= room:
        ops.append(op)
        size += len(op)
        i += 1
    return ops


def _largest(make: Callable[[int], bytes], room: int = ROOM) -> bytes:
    """``make(n)`` for about the largest ``n`` that fits ``room`` bytes (items grow the
    encoding linearly: estimated from two sizes, then stepped down while too large)."""
    one = len(make(1))
    per = max((len(make(1001)) - one) / 1000, 1.0)
    n = 1 + int((room - one) / per)
    while len(data := make(n)) > room:
        n -= int((len(data) - room) / per) + 1
    return data


def _endpoint(i: int, ports: tuple[EndpointPort, ...] = ()) -> ViewEndpoint:
    return ViewEndpoint(_ip(i), ports, "node-a", "zone-a", True, True, False, True, True)


def _marked(n: int) -> ViewEndpoint:
    """An endpoint with ``n`` port marks, each for another port (a row's marks are checked
    for a port marked twice: that must not cost n^2)."""
    marks = tuple(PortMarks(f"p{i}", TransportProtocol.TCP, True, False) for i in range(n))
    return _endpoint(1).with_port_marks(marks)


def _delta(ops: list[bytes]) -> bytes:
    return pack_delta("bench", 1, 0.0, None, ops)


SVC = encode_op(SetService(_service()))


def _ports(n: int) -> tuple[EndpointPort, ...]:
    """``n`` ports (built per use: 60,000 of them kept at import held ~10 MB of every RSS
    figure the benchmark reports, which no agent holds)."""
    return tuple(EndpointPort(f"p{i % 100}", TransportProtocol.TCP, 1 + i) for i in range(n))


# every message: the shape's name -> its bytes; all but the last three are valid
SHAPES: dict[str, Callable[[], bytes]] = {
    "endpoints (ep)": lambda: _delta(
        _fill([SVC], lambda i: encode_op(SetEndpoint(KEY, _endpoint(i))))
    ),
    "compact endpoints (eps rows)": lambda: _delta(
        [
            SVC,
            _largest(
                lambda n: packb(endpoints_to_wire(KEY, [_endpoint(i) for i in range(n)])),
                ROOM - len(SVC),
            ),
        ]
    ),
    "minimal services": lambda: _delta(
        _fill([], lambda i: encode_op(SetService(_service(f"s{i}"))))
    ),
    "nodes": lambda: _delta(_fill([], lambda i: encode_op(SetNode(Node(f"n{i}", (_ip(i),)))))),
    "node deletions": lambda: _delta(_fill([], lambda i: encode_op(DeleteNode("a")))),
    "a service of many ports": lambda: _delta(
        [
            _largest(
                lambda n: encode_op(
                    SetService(
                        _service(
                            ports=tuple(
                                ServicePort(f"p{i}", TransportProtocol.TCP, 1 + i, "http")
                                for i in range(n)
                            )
                        )
                    )
                )
            )
        ]
    ),
    "an endpoint of many ports": lambda: _delta(
        [
            SVC,
            _largest(
                lambda n: encode_op(SetEndpoint(KEY, _endpoint(1, _ports(n)))), ROOM - len(SVC)
            ),
        ]
    ),
    "an endpoint of many port marks": lambda: _delta(
        [
            SVC,
            _largest(lambda n: packb(endpoints_to_wire(KEY, [_marked(n)])), ROOM - len(SVC)),
        ]
    ),
    "many source ranges": lambda: _delta(
        [
            _largest(
                lambda n: encode_op(
                    SetService(
                        _service(
                            load_balancer_source_ranges=tuple(f"{_ip(i)}/32" for i in range(n))
                        )
                    )
                )
            )
        ]
    ),
    "many labels": lambda: _delta(
        [
            _largest(
                lambda n: encode_op(
                    SetService(_service(labels=tuple((f"k{i}", "") for i in range(n))))
                )
            )
        ]
    ),
    "zstd frame of endpoints": lambda: pack_compressed_chunk(
        "bench",
        1,
        0,
        1,
        compress(
            ops_array(_fill([SVC], lambda i: encode_op(SetEndpoint(KEY, _endpoint(i))), ROOM))
        ),
    ),
    # refused: beyond MAX_MESSAGE (the watcher never sends more, whatever max_payload)
    "refused: 1 MiB of endpoints": lambda: _delta(
        _fill([SVC], lambda i: encode_op(SetEndpoint(KEY, _endpoint(i))), MAX_PAYLOAD - 200)
    ),
    "refused: zstd frame inflating to 1 MiB": lambda: pack_compressed_chunk(
        "bench",
        1,
        0,
        1,
        compress(
            ops_array(
                _fill(
                    [SVC],
                    lambda i: encode_op(SetEndpoint(KEY, _endpoint(i))),
                    MAX_PAYLOAD - 200,
                )
            )
        ),
    ),
    "refused: 1 MiB of empty arrays": lambda: _delta([b"\x90" * (MAX_PAYLOAD - 200)]),
}


@dataclass(frozen=True, slots=True)
class Cost:
    shape: str
    size: int  # bytes of the message
    items: int  # operations decoded (0: refused)
    cpu_ms: float  # the fastest of the runs, process CPU
    cpu_ms_max: float
    peak_mb: float  # traced memory at its peak (a separate run)
    refused: bool


def decode_and_apply(data: bytes) -> int:
    """An agent's work for one message: the operations applied (0: refused)."""
    view: View[Any] = View()
    view.digest()  # an agent keeps its view's digest current
    try:
        message = decode(data, "node", None, MAX_PAYLOAD)
    except MalformedMessage:
        return 0
    assert isinstance(message, Delta | SnapshotChunk)
    apply_in_place(message.ops, view)
    return len(message.ops)


def cost(shape: str, data: bytes, runs: int = 5) -> Cost:
    times = []
    for _ in range(runs):
        started = time.process_time()
        items = decode_and_apply(data)
        times.append(time.process_time() - started)
    tracemalloc.start()
    try:
        decode_and_apply(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return Cost(shape, len(data), items, min(times) * 1e3, max(times) * 1e3, peak / 1e6, not items)


def measure(runs: int = 5) -> list[Cost]:
    return [cost(shape, make(), runs) for shape, make in SHAPES.items()]


def table(costs: list[Cost]) -> str:
    rows = [("one message (decode + apply)", "bytes", "operations", "CPU ms (min-max)", "peak MB")]
    for c in costs:
        rows.append(
            (
                c.shape,
                f"{c.size:,}",
                "refused" if c.refused else f"{c.items:,}",
                f"{c.cpu_ms:.1f}-{c.cpu_ms_max:.1f}",
                f"{c.peak_mb:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
