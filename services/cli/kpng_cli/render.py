"""The observer's JSON as terminal text (pure: JSON in, lines out)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kpng_cli.sse import SseEvent

Row = Sequence[str]


def table(headers: Row, rows: Sequence[Row]) -> str:
    """Columns padded to their widest cell, as kubectl prints them."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = [
        "   ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in (headers, *rows)
    ]
    return "\n".join(lines)


def status_table(nodes: Sequence[Mapping[str, Any]]) -> str:
    headers = ("NODE", "STATE", "APPLIED", "PUBLISHED", "LAG", "BACKEND", "ERRORS", "WARNINGS")
    return table(headers, [_node_row(n) for n in nodes])


def _node_row(node: Mapping[str, Any]) -> Row:
    applied = node.get("applied") or {}
    published = node.get("published") or {}
    lag = node.get("lag")
    if lag is None:
        lag_text = "-"
    else:
        seqs = lag.get("seqs")
        behind = f"{seqs} seqs" if seqs is not None else "new epoch"
        lag_text = f"{behind}, {lag.get('seconds', 0):.1f}s"
    errors = applied.get("errors") or []
    warnings = applied.get("warnings") or []
    return (
        str(node["name"]),
        str(node.get("state", "")),
        _seq(applied.get("seq")) if applied else "-",
        _seq(published.get("seq")),
        lag_text,
        str(applied.get("backend", "-")) if applied else "-",
        "; ".join(errors) if errors else "-",
        "; ".join(warnings) if warnings else "-",
    )


def _seq(seq: Any) -> str:
    return "-" if seq is None or seq == -1 else str(seq)


def status_summary(nodes: Sequence[Mapping[str, Any]]) -> str:
    """``3 nodes: 2 ok, 1 lagging``."""
    counts: dict[str, int] = {}
    for n in nodes:
        counts[str(n.get("state"))] = counts.get(str(n.get("state")), 0) + 1
    parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''}" + (f": {parts}" if parts else "")


def services_table(services: Sequence[Mapping[str, Any]]) -> str:
    headers = ("SERVICE", "TYPE", "CLUSTER-IPS", "PORTS", "ENDPOINTS")
    rows = []
    for s in services:
        counts = s.get("endpointCounts") or {}
        rows.append(
            (
                f"{s['ns']}/{s['name']}",
                str(s.get("type", "")),
                ",".join(s.get("cluster_ips") or []) or "-",
                ",".join(_port(p) for p in s.get("ports") or []) or "-",
                f"{counts.get('usable', 0)}/{counts.get('total', 0)}",
            )
        )
    return table(headers, rows)


def _port(p: Mapping[str, Any]) -> str:
    node_port = f":{p['node_port']}" if p.get("node_port") else ""
    return f"{p['port']}{node_port}/{p['proto']}"


def explain_text(result: Mapping[str, Any], proto: str, destination: str) -> str:
    """What ``/nodes/NODE/explain`` says, as a few lines."""
    head = f"{result['node']}: {proto} {destination} -> {result['verdict']}"
    if result.get("service"):
        head += f" ({result.get('match')} of {result['service']}, port {result.get('port')})"
    lines = [head]
    masquerade = result.get("masquerade")
    if result.get("verdict") == "forward":
        shown = "depends on the source" if masquerade is None else "yes" if masquerade else "no"
        lines.append(f"  masquerade: {shown}")
        if result.get("affinityTimeout"):
            lines.append(f"  session affinity: {result['affinityTimeout']}s")
        for t in result.get("targets") or []:
            flags = (("local", t["local"]), ("terminating", t["terminating"]))
            notes = [name for name, on in flags if on]
            extra = f" ({', '.join(notes)})" if notes else ""
            lines.append(f"  -> {t['ip']}:{t['port']} on {t['node'] or '?'}{extra}")
    lines.extend(f"  because {r}" for r in result.get("reasons") or [])
    lines.append(f"  (node view epoch {result.get('epoch')}, seq {result.get('seq')})")
    return "\n".join(lines)


def event_line(event: SseEvent) -> str:
    """One line per event: id, type, the data compacted."""
    data = event.data if isinstance(event.data, str) else json.dumps(event.data, sort_keys=True)
    return f"{event.id or '-'} {event.type} {data}"


def event_json(event: SseEvent) -> str:
    return json.dumps({"id": event.id, "type": event.type, "data": event.data}, sort_keys=True)
