"""The nftables backend with real nftables and real traffic in network namespaces."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from kpng.bus.consumer import Applied
from kpng.dataplane.nft import planner
from kpng.dataplane.nft.jsonread import listing
from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.kernel.nlnft import NetlinkNftables
from kpng.dataplane.nft.objects import NftError, Set, Table
from kpng.dataplane.nft.transaction import Transaction
from kpng.diff import View, diff
from kpng.model import (
    EndpointPort,
    Node,
    ServicePort,
    TrafficPolicy,
    TransportProtocol,
    ViewEndpoint,
)
from kpng_agent.backends import pipeline
from kpng_agent.backends.nftables import NftablesBackend, Settings
from tests.e2e.netns import Cluster, sh
from tests.nft.helpers import ep, svc, view

pytestmark = pytest.mark.netns
NODE = "node-a"
A, B = "10.244.1.2", "10.244.1.3"


class Driver:
    def __init__(self, c: Cluster) -> None:
        self.c = c
        self.view: View[ViewEndpoint] = View()
        self.seq = 0
        self.backend = self.new_backend()

    def new_backend(self) -> NftablesBackend:
        settings = Settings(NODE, cluster_cidrs=("10.244.0.0/16",), families=(4,))
        return NftablesBackend(settings, NftCommand(self.c.nft_argv()), lambda: [self.c.node_ip])

    def program(self, new: View[ViewEndpoint], full: bool = False) -> int:
        new.nodes[NODE] = Node(NODE, (self.c.node_ip,))
        ops = tuple(diff(self.view, new))
        self.seq += 1
        kind = "snapshot" if full else "delta"
        event = Applied(kind, "e1", self.seq, new, ops)  # type: ignore[arg-type]
        asyncio.run(self.backend.program(event, full))
        self.view = new
        return self.backend.last_ops


@pytest.fixture
def d(cluster: Cluster) -> Iterator[Driver]:
    cluster.pod("pod-a", A)
    cluster.pod("pod-b", B)
    driver = Driver(cluster)
    yield driver
    asyncio.run(driver.backend.close())


def pod_b(d: Driver) -> str:
    return d.c.namespaces[3]


def local(ip: str) -> ViewEndpoint:
    return ep(ip, node=NODE)


def test_cluster_ip_keeps_pod_source_and_masquerades_the_node(d: Driver) -> None:
    d.program(view((svc("web"), [local(A)])), full=True)
    assert d.c.request(pod_b(d), "10.96.0.10", 80) == f"pod-a {B}"
    assert d.c.request(d.c.client, "10.96.0.10", 80) == "pod-a 10.244.1.1"
    assert d.c.request(d.c.node, "10.96.0.10", 80).split()[0] == "pod-a"


def test_hairpin_is_masqueraded(d: Driver) -> None:
    d.program(view((svc("web"), [local(A)])), full=True)
    assert d.c.request(d.c.namespaces[2], "10.96.0.10", 80) == "pod-a 10.244.1.1"


def test_udp_cluster_ip(d: Driver) -> None:
    s = svc("dns", port=53, protocol="UDP")
    udp = ep(A, node=NODE, ports=(EndpointPort("http", TransportProtocol.UDP, 8080),))
    d.program(view((s, [udp])), full=True)
    assert d.c.request(pod_b(d), "10.96.0.10", 53, "udp") == f"pod-a {B}"
    assert d.c.request(pod_b(d), "10.96.0.10", 53, "tcp") == "refused"


def test_nodeport_and_udp_and_incremental_endpoint_add(d: Driver) -> None:
    s = svc("web", np=30080)
    d.program(view((s, [local(A)])), full=True)
    assert d.c.request(d.c.client, d.c.node_ip, 30080).split()[0] == "pod-a"
    assert d.program(view((s, [local(B)]))) <= 12
    assert d.c.request(d.c.client, d.c.node_ip, 30080).split()[0] == "pod-b"


def test_no_endpoints_is_refused_at_once(d: Driver) -> None:
    d.program(view((svc("web", np=30080), [])), full=True)
    for ns, ip, port in (
        (pod_b(d), "10.96.0.10", 80),
        (d.c.client, d.c.node_ip, 30080),
        (pod_b(d), "10.96.0.10", 81),
    ):
        started = time.monotonic()
        assert d.c.request(ns, ip, port) == "refused"
        assert time.monotonic() - started < 1.5


def test_etp_local_keeps_the_client_source(d: Driver) -> None:
    s = svc("web", np=30080, external_traffic_policy=TrafficPolicy.LOCAL)
    d.program(view((s, [local(A)])), full=True)
    assert d.c.request(d.c.client, d.c.node_ip, 30080) == f"pod-a {d.c.client_ip}"
    s2 = svc("web", np=30080)
    d.program(view((s2, [local(A)])))
    assert d.c.request(d.c.client, d.c.node_ip, 30080) != f"pod-a {d.c.client_ip}"


def test_session_affinity_keeps_one_backend(d: Driver) -> None:
    d.program(view((svc("web", affinity_timeout=60), [local(A), local(B)])), full=True)
    answers = {d.c.request(d.c.client, "10.96.0.10", 80).split()[0] for _ in range(20)}
    assert len(answers) == 1


def test_restarted_backend_adopts_without_writing(d: Driver) -> None:
    v = view((svc("web", np=30080), [local(A), local(B)]), (svc("x", ip="10.96.0.11"), []))
    d.program(v, full=True)
    asyncio.run(d.backend.close())
    d.backend = d.new_backend()
    d.view = View()
    assert d.program(v, full=True) == 0


def test_cleanup_removes_only_kpng_tables(d: Driver) -> None:
    d.program(view((svc("web"), [local(A)])), full=True)
    sh("nft", "add", "table", "ip", "other", ns=d.c.node)
    sh(str(Path(".venv/bin/kpng-agent").resolve()), "cleanup", ns=d.c.node)
    tables = sh("nft", "list", "tables", ns=d.c.node)
    assert "other" in tables and "kpng" not in tables


def test_netlink_elements_are_what_nft_lists_and_carry_traffic(d: Driver) -> None:
    v = view((svc("web", np=30080), [local(A), local(B)]), (svc("x", ip="10.96.0.11"), []))
    d.program(v, full=True)
    nl = d.backend.nft
    assert isinstance(nl, NetlinkNftables) and nl.batches >= 1
    table = Table("ip", "kpng")
    by_nft = asyncio.run(NftCommand(d.c.nft_argv()).read(table))
    by_netlink = asyncio.run(nl.read(table))
    assert by_nft is not None and by_netlink is not None
    assert by_nft.elements == by_netlink.elements
    assert (by_nft.chains, by_nft.sets, by_nft.maps) == (
        by_netlink.chains,
        by_netlink.sets,
        by_netlink.maps,
    )
    assert ("endpoints_1", ("1", "1")) in by_nft.elements  # target 1: shard 1
    # the ids' and digests' sets read before the table is returned, the others by a thread
    assert {"pick", "chain_digests"} <= set(by_netlink.first)
    assert by_netlink.rest is not None and "endpoints_1" in by_netlink.rest.result()
    assert d.c.request(d.c.client, d.c.node_ip, 30080).split()[0] in ("pod-a", "pod-b")
    sh("nft", "add", "element", "ip", "kpng", "cluster_ips", "{ 10.96.9.9 }", ns=d.c.node)
    again = asyncio.run(nl.read(table))
    assert again is not None and ("cluster_ips", ("10.96.9.9",)) in again.elements


def test_a_refused_batch_names_the_element_and_a_full_sync_repairs(d: Driver) -> None:
    d.program(view((svc("web"), [local(A)]), (svc("x", ip="10.96.0.11"), [local(B)])), full=True)
    sh("nft", "delete", "element", "ip", "kpng", "cluster_ips", "{ 10.96.0.11 }", ns=d.c.node)
    with pytest.raises(NftError, match=r"delete element 10\.96\.0\.11 in set cluster_ips"):
        d.program(view((svc("web"), [local(A)])))
    nl = d.backend.nft
    assert isinstance(nl, NetlinkNftables) and nl.errors == 1
    assert d.c.request(pod_b(d), "10.96.0.10", 80).split()[0] == "pod-a"  # nothing applied
    assert d.program(view((svc("web"), [local(B)])), full=True) > 0  # the agent's retry
    assert d.c.request(pod_b(d), "10.96.0.10", 80).split()[0] == "pod-b"
    live = asyncio.run(nl.read(Table("ip", "kpng")))
    assert live is not None and ("service_ips", ("10.96.0.11", "tcp", "80")) not in live.elements


def test_netlink_set_definitions_are_what_nft_lists(d: Driver) -> None:
    d.program(view((svc("web", affinity_timeout=60), [local(A), local(B)])), full=True)
    nl = d.backend.nft
    assert isinstance(nl, NetlinkNftables)
    table = Table("ip", "kpng")
    out = sh("nft", "-j", "list", "table", "ip", "kpng", ns=d.c.node)
    by_nft = listing(json.loads(out))
    by_netlink = nl._definitions(table)
    assert by_netlink is not None and any(n.startswith("affmap_") for n in by_netlink.sets)
    # the kernel flags the affinity map dynamic (NFT_SET_EVAL); nft 1.0.6's JSON omits it
    aff = next(s for n, s in by_netlink.sets.items() if n.startswith("affmap_"))
    assert aff.flags == ("dynamic", "timeout") and aff.timeout == 60
    assert {n: _static(s) for n, s in by_netlink.sets.items()} == {
        n: _static(s) for n, s in by_nft.sets.items()
    }
    assert by_netlink.maps == by_nft.maps
    assert sorted(by_netlink.chains) == sorted(by_nft.chains)
    assert nl._definitions(Table("ip", "absent")) is None
    assert asyncio.run(nl.read(Table("ip", "absent"))) is None


def _static(s: Set) -> Set:
    return replace(s, flags=tuple(f for f in s.flags if f != "dynamic"))


def test_two_services_claiming_one_external_ip_port(
    d: Driver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kpng_agent.backends.nftables")
    ext, ext2 = "203.0.113.10", "203.0.113.11"
    sh("ip", "route", "add", "203.0.113.0/24", "via", d.c.node_ip, ns=d.c.client)
    a = svc("a", ip="10.96.0.10", external_ips=(ext,))
    two = (
        ServicePort("http", TransportProtocol.TCP, 80, 8080),
        ServicePort("alt", TransportProtocol.TCP, 81, 8080),
    )
    b = svc("b", ip="10.96.0.11", external_ips=(ext, ext2), ports=two)
    b_ep = ep(B, node=NODE, ports=tuple(EndpointPort(p.name, p.protocol, 8080) for p in two))
    # without arbitration the batch fails (the kernel: "File exists"), on every sync
    d.program(view((a, [local(A)]), (b, [b_ep])), full=True)
    assert d.c.request(d.c.client, ext, 80).split()[0] == "pod-a"  # default/a sorts first
    assert d.c.request(d.c.client, ext, 81).split()[0] == "pod-b"  # the loser's other port
    assert d.c.request(d.c.client, ext2, 80).split()[0] == "pod-b"  # and its other IP
    assert [c.claim for c in d.backend.conflicts] == [(ext, "TCP", 80)]
    warned = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage()]
    assert any(f"{ext}:80/TCP" in m and "default/a" in m and "default/b" in m for m in warned), (
        warned
    )
    d.program(view((b, [b_ep])))  # the winner deleted (a delta): the loser gets it
    assert d.c.request(d.c.client, ext, 80).split()[0] == "pod-b"
    assert d.backend.conflicts == ()
    assert any("no longer" in r.getMessage() and ext in r.getMessage() for r in caplog.records)


def test_pick_chains_written_over_netlink_list_as_nft_writes_them(d: Driver) -> None:
    """The pick chains go in the element batch (kpng.dataplane.nft.netlink.rules): the same
    table through ``nft -f`` alone lists the same, chains and rules (elements aside)."""
    many = [local(f"10.244.2.{i}") for i in range(1, 41)]
    v = view(
        (svc("web", affinity_timeout=60), [local(A), local(B)]),
        (svc("big", ip="10.96.0.11", affinity_timeout=60), many),  # affinity jumps to pick_40_*
        (svc("wide", ip="10.96.0.12"), many[:33]),  # pick_33_*: no pick_static element
    )
    d.program(v, full=True)
    settings = replace(d.backend.settings, table="kpngtext", netlink=False)
    text = NftablesBackend(settings, NftCommand(d.c.nft_argv()), lambda: [d.c.node_ip])
    asyncio.run(text.program(Applied("snapshot", "e1", 1, d.view, ()), True))  # type: ignore[arg-type]
    try:
        by_netlink = sh("nft", "-t", "list", "table", "ip", "kpng", ns=d.c.node)
        by_nft = sh("nft", "-t", "list", "table", "ip", "kpngtext", ns=d.c.node)
    finally:
        sh("nft", "delete", "table", "ip", "kpngtext", ns=d.c.node)
    assert "chain pick_33_" in by_netlink and "goto pick_40_" in by_netlink
    # chains list in the order they were made: nft's first, then the batch's
    assert _blocks(by_netlink) == _blocks(by_nft.replace("kpngtext", "kpng"))


class CountingNft(NftCommand):
    """The ``nft`` command, counting the scripts it runs."""

    runs: list[str] = []

    async def run(self, tx: Transaction) -> None:
        if tx.ops or tx.packed:
            self.runs.append(tx.script())
        await super().run(tx)

    async def exec(self, args: Sequence[str], stdin: str = "") -> tuple[int, str, str]:
        self.runs.append(" ".join(args))
        return await super().exec(args, stdin)


def test_a_table_made_over_netlink_alone_lists_as_nft_writes_it(d: Driver) -> None:
    """Without affinity or source ranges, a full sync from empty starts no ``nft``: the table,
    its sets, hook and dispatch chains and their rules, the pick chains and the interval
    elements go in the element batch (kpng.dataplane.nft.netlink.definitions and .exprs). The
    table lists as the same table written by ``nft -f`` alone, and serves."""
    nl = d.backend.nft
    assert isinstance(nl, NetlinkNftables)
    CountingNft.runs = []
    nl.nft = CountingNft(nl.nft.argv)
    np = ServicePort("http", TransportProtocol.TCP, 80, 8080, 30080)
    v = view(
        (svc("web", ports=(np,)), [local(A), local(B)]),
        (svc("db", ip="10.96.0.11"), [local(A)]),
        (svc("none", ip="10.96.0.12"), []),
    )
    d.program(v, full=True)
    assert CountingNft.runs == []
    assert d.c.request(pod_b(d), "10.96.0.11", 80) == f"pod-a {B}"
    assert d.c.request(pod_b(d), "10.96.0.12", 80) == "refused"  # reject_chain
    assert d.c.request(pod_b(d), "10.96.0.10", 80).split()[0] in ("pod-a", "pod-b")
    settings = replace(d.backend.settings, table="kpngtext", netlink=False)
    text = NftablesBackend(settings, NftCommand(d.c.nft_argv()), lambda: [d.c.node_ip])
    asyncio.run(text.program(Applied("snapshot", "e1", 1, d.view, ()), True))  # type: ignore[arg-type]
    try:
        by_netlink = sh("nft", "list", "table", "ip", "kpng", ns=d.c.node)
        by_nft = sh("nft", "list", "table", "ip", "kpngtext", ns=d.c.node)
    finally:
        sh("nft", "delete", "table", "ip", "kpngtext", ns=d.c.node)
    assert "type nat hook prerouting" in by_netlink and "typeof meta mark" in by_netlink
    assert _blocks(by_netlink) == _blocks(by_nft.replace("kpngtext", "kpng"))
    # a restart reads the table back over netlink alone (interval sets included), writes nothing
    restarted = d.new_backend()
    assert isinstance(restarted.nft, NetlinkNftables)
    restarted.nft.nft = CountingNft(restarted.nft.nft.argv)
    try:
        asyncio.run(restarted.program(Applied("snapshot", "e1", 2, d.view, ()), True))  # type: ignore[arg-type]
    finally:
        asyncio.run(restarted.close())
    assert restarted.last_ops == 0 and CountingNft.runs == []


def _blocks(listing: str) -> list[str]:
    """A table's listing as its sorted chain and set blocks (without the table's lines)."""
    inner = listing.strip().splitlines()[1:-1]
    assert inner
    return sorted("\n".join(inner).split("\n\n"))


def test_a_new_table_written_in_steps_carries_traffic_and_is_adopted(
    d: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner, "STEP", 2)  # 7 services: 4 steps, each planned in a thread
    monkeypatch.setattr(pipeline, "THREAD_ABOVE", 0)
    v = view(
        (svc("a", ip="10.96.0.11"), [local(A)]),
        (svc("b", ip="10.96.0.12", np=30080), [local(A), local(B)]),
        (svc("c", ip="10.96.0.13"), []),
        (svc("d", ip="10.96.0.14", affinity_timeout=60), [local(B)]),
        (svc("e", ip="10.96.0.15"), [local(A)]),
        (svc("f", ip="10.96.0.16", np=30081), [local(B)]),
        (svc("g", ip="10.96.0.17"), [local(A), local(B)]),
    )
    d.program(v, full=True)
    nl = d.backend.nft
    assert isinstance(nl, NetlinkNftables) and nl.batches == 4
    assert d.c.request(pod_b(d), "10.96.0.17", 80).split()[0] in ("pod-a", "pod-b")
    assert d.c.request(d.c.client, d.c.node_ip, 30081).split()[0] == "pod-b"
    assert d.c.request(pod_b(d), "10.96.0.13", 80) == "refused"
    asyncio.run(d.backend.close())
    d.backend = d.new_backend()
    d.view = View()
    assert d.program(v, full=True) == 0  # read back: what the steps wrote is the plan
