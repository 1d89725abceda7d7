"""One verdict vocabulary for the packet tracer and for ``explain``, and its table text.

A packet is DNATed to some endpoints (masqueraded or not, under session affinity or not),
rejected, dropped, or accepted untouched (kpng does not touch it). The tracer's ``accept``
and explain's ``pass`` are the same thing; so are ``dnat`` and ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kpng.dataplane.nft.tracer import Trace
from kpng.observe.explain import Explanation

Action = Literal["dnat", "reject", "drop", "accept"]
_ACTIONS: dict[str, Action] = {
    "forward": "dnat",
    "pass": "accept",
    "reject": "reject",
    "drop": "drop",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Action
    endpoints: tuple[str, ...] = ()  # "ip:port", sorted
    masquerade: bool = False  # SNATed on the way out (a hairpin to itself included)
    affinity: bool = False

    def text(self) -> str:
        if self.action != "dnat":
            return self.action
        flags = "masq=yes" if self.masquerade else "masq=no"
        flags += " affinity" if self.affinity else ""
        return f"dnat {flags} -> {' '.join(self.endpoints)}"


def _ip_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def from_trace(t: Trace, source: str) -> Verdict:
    """The tracer's answer. A client that may reach only itself is masqueraded (hairpin)."""
    if t.verdict != "dnat":
        return Verdict(t.verdict)
    endpoints = tuple(sorted(_ip_port(ip, port) for ip, port in t.endpoints))
    hairpin_only = t.hairpin and t.endpoint_ips == {source}
    return Verdict("dnat", endpoints, t.masquerade or hairpin_only, t.affinity)


def from_explanation(e: Explanation) -> Verdict:
    """explain's answer; its ``masquerade`` must be known (give it the source and CIDRs)."""
    action = _ACTIONS[e.verdict]
    if action != "dnat":
        return Verdict(action)
    if e.masquerade is None:
        raise ValueError(f"explain left masquerade open: {e.reasons}")
    endpoints = tuple(sorted(_ip_port(t.ip, t.port) for t in e.targets))
    return Verdict("dnat", endpoints, e.masquerade, e.affinity_timeout is not None)
