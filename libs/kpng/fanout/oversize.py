"""Services whose operations cannot fit one message, whatever the splitting.

The watcher splits a batch into messages at operation boundaries; one operation larger than
the server's max_payload (a Service with 30,000 ports, a 2 MB label value, an endpoint with
thousands of ports) can never be published: its delta fails, and so does every catch-up and
snapshot reply that carries it. Such a version is refused before it is published (the
previous version is kept, or none) and never reaches a delta, a snapshot or the history.
"""

from __future__ import annotations

from kpng.bus.codec import encode_op
from kpng.diff import SetEndpoint, SetService
from kpng.fanout.cluster import ServiceState
from kpng.model import Endpoint

# what a node view's variant of an operation may add to the global one (internal/external);
# its port marks are bounded per endpoint (_marks_bound)
VIEW_MARGIN = 64
# an endpoint's encoding beyond its strings: map keys, flags, integers (generous)
_ENDPOINT_FIXED = 160
_PORT_FIXED = 16
_HINT_FIXED = 8
_MARKS_FIXED = 16  # the "port_marks" key and its list's header
_MARK_FIXED = 24  # a port mark's list header, row, name header, protocol and flags


def oversize_op(state: ServiceState, limit: int) -> int:
    """The size of an operation of ``state`` that cannot fit a message of ``limit`` bytes
    of operations, or 0 when every operation fits. The service is encoded once; an
    endpoint only when a bound on its size from its strings does not already fit."""
    spec = state.spec
    if spec is None:
        return 0
    room = limit - VIEW_MARGIN
    size = len(encode_op(SetService(spec)))
    if size > room:
        return size
    several = len(state.endpoints) > 1  # port marks need endpoints listing different ports
    for e in state.endpoints:
        marks = _marks_bound(e) if several else 0
        bound = _endpoint_bound(spec.key, e) + marks
        if bound > room and (size := _encoded(spec.key, e) + marks) > room:
            return size
    return 0


def _marks_bound(e: Endpoint) -> int:
    """At least the size of the port marks a node view may give the endpoint (one per
    service port it serves, see kpng.fanout.views): ``[row, name, protocol, flags]``."""
    names = [p.name for p in e.ports]
    return _MARKS_FIXED + sum(4 * len(name) + _MARK_FIXED for name in names) if names else 0


def _endpoint_bound(key: str, e: Endpoint) -> int:
    """At least the size of the endpoint's ``ep`` operation (strings count at most 5 bytes
    of msgpack header each; characters at most 4 bytes of UTF-8)."""
    return 4 * (
        _ENDPOINT_FIXED
        + len(key)
        + len(e.ip)
        + len(e.node)
        + len(e.zone)
        + sum(len(p.name) + _PORT_FIXED for p in e.ports)
        + sum(len(h) + _HINT_FIXED for h in (*e.zone_hints, *e.node_hints))
    )


def _encoded(key: str, e: Endpoint) -> int:
    return len(encode_op(SetEndpoint(key, e)))
