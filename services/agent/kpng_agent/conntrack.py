"""UDP conntrack cleanup after each sync: the plan (:mod:`kpng.dataplane.conntrack`) says what
is stale, pyroute2's Conntrack lists and deletes entries in this network namespace."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any, Protocol

from kpng.bus.consumer import Applied
from kpng.dataplane.conntrack import ConntrackPlan, Index, UdpEntry
from kpng.diff import service_keys
from kpng.model import ViewEndpoint
from kpng.runtime.proxymetrics import ProxyMetrics

log = logging.getLogger(__name__)
FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


class UdpConntrack(Protocol):
    def udp_entries(self, family: int) -> list[tuple[UdpEntry, Any]]:
        """Every UDP entry of the IP family (4 or 6), with a handle that :meth:`delete` takes."""
        ...

    def delete(self, handle: Any) -> None: ...


class PyrouteConntrack:
    """The kernel's conntrack table of this namespace, through pyroute2."""

    def udp_entries(self, family: int) -> list[tuple[UdpEntry, Any]]:
        from pyroute2 import Conntrack
        from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

        out: list[tuple[UdpEntry, Any]] = []
        af = FAMILIES[family]
        # a dump lists the family of its request's header only (pyroute2: AF_INET)
        with Conntrack(nfgen_family=af) as ct:
            wanted = NFCTAttrTuple(family=af, proto=socket.IPPROTO_UDP)
            for e in ct.dump_entries(tuple_orig=wanted):
                o, r = e.tuple_orig, e.tuple_reply
                out.append((UdpEntry(family, str(o.daddr), int(o.dport), str(r.saddr)), o))
        return out

    def delete(self, handle: Any) -> None:
        from pyroute2 import Conntrack

        with Conntrack(nfgen_family=handle.family) as ct:
            ct.entry("del", tuple_orig=handle)


class FakeConntrack:
    """An in-memory conntrack table for tests."""

    def __init__(self, entries: list[UdpEntry] | None = None) -> None:
        self.entries = list(entries or [])

    def udp_entries(self, family: int) -> list[tuple[UdpEntry, Any]]:
        return [(e, e) for e in self.entries if e.family == family]

    def delete(self, handle: Any) -> None:
        self.entries.remove(handle)


def clean(table: UdpConntrack, index: Index, family: int) -> int:
    """Delete the stale entries of the IP family; returns how many went (an entry that
    vanished meanwhile is not an error)."""
    deleted = 0
    for entry, handle in table.udp_entries(family):
        if not index.stale(entry):
            continue
        try:
            table.delete(handle)
            deleted += 1
        except Exception as exc:  # gone already, or the kernel said no
            log.debug("conntrack entry %s not deleted: %s", entry, exc)
    return deleted


class ConntrackCleaner:
    """A sync hook: after a full sync, or a delta that changed a UDP service, delete the
    UDP entries that are stale for the new view."""

    def __init__(self, table: UdpConntrack, metrics: ProxyMetrics | None = None) -> None:
        self.table = table
        self.metrics = metrics
        self.plan = ConntrackPlan()
        self.deleted = 0

    async def synced(self, event: Applied[ViewEndpoint], full: bool) -> None:
        keys = None if full else service_keys(event.ops)
        if not self.plan.update(event.view, keys) and not full:
            return
        index, deleted = self.plan.index(), 0
        for family in FAMILIES:  # as kube-proxy's reconciler, one family at a time
            started = time.perf_counter()
            gone = await asyncio.to_thread(clean, self.table, index, family)
            if self.metrics is not None:
                self.metrics.conntrack(family, gone, time.perf_counter() - started)
            deleted += gone
        self.deleted += deleted
        if deleted:
            log.info("deleted %d stale UDP conntrack entries (seq %d)", deleted, event.seq)
