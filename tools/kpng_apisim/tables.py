"""``meta.k8s.io/v1`` Table responses, so that ``kubectl get`` prints useful columns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kpng_apisim.errors import JsonObject
from kpng_apisim.resources import ResourceType

Cell = Callable[[JsonObject], Any]


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def _ports(svc: JsonObject) -> str:
    ports = svc.get("spec", {}).get("ports") or []
    shown = [
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/"
        f"{p.get('protocol', 'TCP')}"
        for p in ports
    ]
    return ",".join(shown) or "<none>"


def _external(svc: JsonObject) -> str:
    spec = svc.get("spec", {})
    ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    ips = [*(spec.get("externalIPs") or []), *(i.get("ip") or i.get("hostname") for i in ingress)]
    if ips:
        return ",".join(str(ip) for ip in ips)
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<pending>" if spec.get("type") == "LoadBalancer" else "<none>"


def _endpoints(eps: JsonObject) -> str:
    addresses = [a for e in eps.get("endpoints") or [] for a in e.get("addresses") or []]
    return ",".join(addresses) or "<unset>"


def _slice_ports(eps: JsonObject) -> str:
    return ",".join(str(p.get("port")) for p in eps.get("ports") or []) or "<unset>"


_COLUMNS: dict[str, list[tuple[str, Cell]]] = {
    "services": [
        ("Type", lambda o: o.get("spec", {}).get("type", "")),
        ("Cluster-IP", lambda o: o.get("spec", {}).get("clusterIP", "<none>")),
        ("External-IP", _external),
        ("Port(s)", _ports),
    ],
    "endpointslices": [
        ("AddressType", lambda o: o.get("addressType", "")),
        ("Ports", _slice_ports),
        ("Endpoints", _endpoints),
    ],
    "namespaces": [("Status", lambda o: o.get("status", {}).get("phase", ""))],
    "nodes": [("Status", lambda o: "Ready")],
    "leases": [("Holder", lambda o: o.get("spec", {}).get("holderIdentity") or "")],
}


def _age(obj: JsonObject, now: datetime) -> str:
    raw = obj.get("metadata", {}).get("creationTimestamp")
    if not raw:
        return "<unknown>"
    created = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((now - created).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(rt: ResourceType, items: list[JsonObject], list_meta: JsonObject) -> JsonObject:
    """A Table of ``items``: Name, the resource's columns, Age."""
    now = datetime.now(UTC)
    columns = _COLUMNS.get(rt.plural, [])
    definitions = [
        {
            "name": name,
            "type": "string",
            "format": "name" if name == "Name" else "",
            "description": "",
            "priority": 0,
        }
        for name in ["Name", *(c[0] for c in columns), "Age"]
    ]
    rows = [
        {
            "cells": [o["metadata"]["name"], *(cell(o) for _, cell in columns), _age(o, now)],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            },
        }
        for o in items
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
