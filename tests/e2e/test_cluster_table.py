"""An agent started on a node whose ``ip kpng`` table was left by something else converges
it to a working ruleset, and touches no other table; ``kpng-agent cleanup`` removes kpng's
tables and nothing else (issue #4). Agents over NATS in the namespace cluster, real traffic.
These tests stop and restart agents, hence a cluster of their own."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from kpng_devrun.procs import venv_bin
from kpng_netns.netns import exec_argv, sh
from tests.e2e.cluster import E2E, endpoints, eventually, service
from tests.nft.test_mark import mark_uses

pytestmark = pytest.mark.netns
IP, NODE_PORT = "10.96.3.1", 30301

# another table in the node, which kpng must leave as it is
OTHER = """
table ip other {
    set keep {
        type ipv4_addr
        elements = { 192.0.2.1, 192.0.2.2 }
    }
    chain guard {
        type filter hook forward priority 10; policy accept;
        ip daddr @keep drop
    }
}
"""

# an earlier layout of ip kpng: sets defined otherwise, objects kpng no longer makes, wrong
# elements, and base chains that drop service traffic
EARLIER = """
table ip kpng {
    set cluster_ips {
        type ipv4_addr
        flags interval
        elements = { 10.96.0.0/12 }
    }
    set stale_set {
        type ipv4_addr
        elements = { 10.96.3.1, 10.96.3.2 }
    }
    map service_ips {
        type ipv4_addr . inet_proto . inet_service : mark
        elements = { 10.96.3.1 . tcp . 80 : 0x00000077, 10.96.3.9 . udp . 53 : 0x00000078 }
    }
    chain stale_chain {
        ip daddr 10.96.3.1 drop
    }
    chain filter_forward {
        type filter hook forward priority -10; policy accept;
        ip daddr @stale_set drop
    }
    chain filter_input {
        type filter hook input priority -10; policy accept;
        tcp dport 30301 drop
    }
}
"""


def nft(ns: str, *argv: str) -> str:
    return sh("nft", *argv, ns=ns)


def listing(ns: str, family: str = "ip", table: str = "kpng") -> dict[str, Any]:
    """Chains (their rules' expressions), sets (definition, elements) of one table."""
    out: dict[str, Any] = {"chains": {}, "sets": {}}
    for obj in json.loads(nft(ns, "-j", "list", "table", family, table))["nftables"]:
        kind, body = next(iter(obj.items()))
        if kind == "chain":
            out["chains"].setdefault(body["name"], [])
        elif kind == "rule":
            out["chains"].setdefault(body["chain"], []).append(body["expr"])
        elif kind in ("set", "map"):
            elements = body.pop("elem", [])
            body.pop("handle", None)
            out["sets"][body["name"]] = {"def": body, "elements": elements}
    return out


def keys(s: dict[str, Any]) -> list[str]:
    """A set's or map's elements: their keys' first parts (e.g. the IPs of ip . proto . port)."""
    out = []
    for e in s["elements"]:
        key = e[0] if isinstance(e, list) else e
        if isinstance(key, dict) and "elem" in key:
            key = key["elem"]["val"]
        if isinstance(key, dict) and "concat" in key:
            key = key["concat"][0]
        out.append(str(key))
    return sorted(out)


def _load(ns: str, script: str) -> None:
    """Run an nft script in ``ns``."""
    subprocess.run(exec_argv(ns, ["nft", "-f", "-"]), input=script, text=True, check=True)


def serves(kube: E2E, node: str) -> None:
    """The service answers from a pod on ``node`` and on its NodePort from outside."""
    pod = kube.pod("pod-2-1").name
    src = "pod-1-1" if node == "node-1" else "pod-2-2"
    # generous: an agent just (re)started first waits for its snapshot, then writes a table
    eventually(
        f"cluster IP via {node}",
        lambda: kube.from_pod(src, IP, 80),
        lambda a: a.startswith(pod),
        timeout=40,
    )
    eventually(
        f"NodePort on {node}",
        lambda: kube.from_client(kube.node_ip(node), NODE_PORT),
        lambda a: a.startswith(pod),
    )


def test_an_agent_converges_a_table_left_by_an_earlier_layout(kube: E2E) -> None:
    ns = kube.c.node_ns("node-1")
    kube.apply(service("web", IP, nodePort=NODE_PORT), endpoints("web", [kube.pod("pod-2-1")]))
    serves(kube, "node-1")
    serves(kube, "node-2")
    fresh = listing(kube.c.node_ns("node-2"))  # what an agent writes for this cluster
    kube.c.stop_agent("node-1")
    nft(ns, "delete", "table", "ip", "kpng")
    _load(ns, OTHER + EARLIER)
    other = nft(ns, "list", "table", "ip", "other")
    assert kube.from_pod("pod-1-1", IP, 80) == "timeout"  # the earlier layout is in effect

    kube.c.start_agent("node-1", "--sync-period", "5")
    serves(kube, "node-1")
    got = listing(ns)
    assert "stale_chain" not in got["chains"] and "stale_set" not in got["sets"]
    assert sorted(got["chains"]) == sorted(fresh["chains"])
    assert sorted(got["sets"]) == sorted(fresh["sets"])
    for name, s in fresh["sets"].items():
        assert got["sets"][name]["def"] == s["def"], name
    assert keys(got["sets"]["cluster_ips"]) == [IP]
    assert keys(got["sets"]["service_ips"]) == [IP]
    for name in ("filter_forward", "filter_input", "nat_prerouting", "dispatch"):
        assert got["chains"][name] == fresh["chains"][name], name
    assert nft(ns, "list", "table", "ip", "other") == other


def test_an_agent_repairs_stale_objects_and_elements_in_its_own_layout(kube: E2E) -> None:
    ns = kube.c.node_ns("node-1")
    kube.apply(service("web", IP, nodePort=NODE_PORT), endpoints("web", [kube.pod("pod-2-1")]))
    serves(kube, "node-1")
    before = listing(ns)
    kube.c.stop_agent("node-1")
    # what a crash half-way through an older version's sync could leave
    _load(
        ns,
        """
        add chain ip kpng stale_chain
        add rule ip kpng stale_chain ip daddr 10.96.3.1 drop
        add set ip kpng stale_set { type ipv4_addr; }
        add element ip kpng stale_set { 10.96.3.1 }
        add element ip kpng cluster_ips { 10.96.9.9 }
        delete element ip kpng service_ips { 10.96.3.1 . tcp . 80 }
        flush chain ip kpng filter_output
        add rule ip kpng filter_output ip daddr 10.96.3.1 drop
        """,
    )
    # filter_output was rewritten by that version: its digest is not this version's
    digests = before["sets"]["chain_digests"]["elements"]
    old = next(
        e for e in digests if isinstance(e, dict) and e["elem"].get("comment") == "filter_output"
    )
    _load(ns, f"delete element ip kpng chain_digests {{ {old['elem']['val']} }}\n")
    assert kube.from_pod("pod-1-1", IP, 80) == "refused"  # the service IP is not mapped
    kube.c.start_agent("node-1", "--sync-period", "5")
    serves(kube, "node-1")
    assert kube.c.request(ns, IP, 80).startswith("pod-2-1")  # through filter_output
    got = listing(ns)
    assert "stale_chain" not in got["chains"] and "stale_set" not in got["sets"]
    assert keys(got["sets"]["cluster_ips"]) == [IP]
    assert got["chains"] == before["chains"]


def test_cleanup_removes_kpng_tables_only_and_the_agent_starts_again(kube: E2E) -> None:
    ns = kube.c.node_ns("node-2")
    kube.apply(service("web", IP, nodePort=NODE_PORT), endpoints("web", [kube.pod("pod-2-1")]))
    serves(kube, "node-2")
    kube.c.stop_agent("node-2")
    _load(ns, OTHER + "table ip6 kpng {\n chain c {\n }\n}\n")  # ip6: e.g. from a dual-stack run
    other = nft(ns, "list", "table", "ip", "other")
    sh(venv_bin("kpng-agent"), "cleanup", ns=ns)
    tables = nft(ns, "list", "tables").split("\n")
    assert "table ip other" in tables and not [t for t in tables if t.endswith(" kpng")]
    assert nft(ns, "list", "table", "ip", "other") == other
    assert kube.from_pod("pod-2-2", IP, 80) == "timeout"  # no service rules left
    kube.c.start_agent("node-2", "--sync-period", "5")
    serves(kube, "node-2")


BASE_CHAINS = {
    "priority": (
        "filter_output",
        "delete chain ip kpng filter_output\n"
        "add chain ip kpng filter_output { type filter hook output priority 5; policy accept; }\n"
        "add rule ip kpng filter_output ct state new jump endpoints_check\n",
    ),
    "policy": (
        "filter_forward",
        "add chain ip kpng filter_forward"
        " { type filter hook forward priority -10; policy drop; }\n",
    ),
}


@pytest.mark.parametrize("case", sorted(BASE_CHAINS))
def test_an_agent_converges_a_base_chain_of_an_earlier_layout(kube: E2E, case: str) -> None:
    """A base chain that differs in hook priority (an earlier layout) or policy, with no
    matching digest: the kernel refuses to change a base chain's priority in place and an
    ``add chain`` naming no policy keeps the old one, so the agent must recreate the table
    (it used to fail every sync, or keep dropping forwarded traffic)."""
    chain, script = BASE_CHAINS[case]
    ns = kube.c.node_ns("node-1")
    kube.apply(service("web", IP, nodePort=NODE_PORT), endpoints("web", [kube.pod("pod-2-1")]))
    serves(kube, "node-1")
    before = listing(ns)
    kube.c.stop_agent("node-1")
    digests = before["sets"]["chain_digests"]["elements"]
    old = next(e for e in digests if isinstance(e, dict) and e["elem"].get("comment") == chain)
    _load(ns, f"delete element ip kpng chain_digests {{ {old['elem']['val']} }}\n" + script)
    kube.c.start_agent("node-1", "--sync-period", "5")
    try:
        _converges(kube, ns, chain, before)
    finally:  # leave node-1 as a fresh agent makes it, for the next case
        kube.c.stop_agent("node-1")
        sh("nft", "delete", "table", "ip", "kpng", ns=ns)
        kube.c.start_agent("node-1", "--sync-period", "5")


def _converges(kube: E2E, ns: str, chain: str, before: dict[str, Any]) -> None:
    # a service created after the restart must reach node-1's dataplane
    kube.apply(
        service("web", IP, nodePort=NODE_PORT),
        endpoints("web", [kube.pod("pod-2-1")]),
        service("new", "10.96.3.7"),
        endpoints("new", [kube.pod("pod-2-2")]),
    )
    eventually(
        "a new service on node-1",
        lambda: kube.from_pod("pod-1-1", "10.96.3.7", 80),
        lambda a: a.startswith("pod-2-2"),
        timeout=40,
    )
    serves(kube, "node-1")
    listed = sh("nft", "list", "chain", "ip", "kpng", chain, ns=ns)
    assert "priority filter - 10; policy accept;" in listed, listed
    assert listing(ns)["chains"][chain] == before["chains"][chain]


def _whole_mark_layout(ns: str) -> str:
    """The chains as the version before ``--masquerade-bit`` wrote them: kpng's register in
    the whole packet mark (``meta mark set ... map @service_ips``), masquerade on its bit 30
    left set, no ``nat_input``; their digests are not this version's. (One listing of the
    table, not one per chain: the table holds ~500 chains, and an ``nft`` run each took
    minutes.)"""
    digests = _digests(ns)
    script = [
        "delete chain ip kpng nat_input",
        f"delete element ip kpng chain_digests {{ {digests['nat_input']} }}",
    ]
    for chain, body in _chain_bodies(nft(ns, "list", "table", "ip", "kpng")).items():
        if "ct mark" not in body or chain == "nat_input":
            continue
        if chain == "nat_postrouting":
            rules = [
                "meta mark & 0x00ffffff vmap @aff_update",
                "meta mark & 0x40000000 != 0x00000000 masquerade fully-random",
                "ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random",
            ]
        else:
            rules = [r.strip().replace("ct mark", "meta mark") for r in body.splitlines()]
            rules = [r for r in rules if r]
        script.append(f"flush chain ip kpng {chain}")
        script += [f"add rule ip kpng {chain} {r}" for r in rules]
        script.append(f"delete element ip kpng chain_digests {{ {digests[chain]} }}")
    return "\n".join(script) + "\n"


def _chain_bodies(table: str) -> dict[str, str]:
    """Each chain's body (the lines between its braces) in ``nft list table`` output."""
    out: dict[str, str] = {}
    name, body = "", list[str]()
    for line in table.splitlines():
        if not name and line.startswith("\tchain ") and line.endswith("{"):
            name, body = line.split()[1], []
        elif name and line == "\t}":
            out[name] = "\n".join(body)
            name = ""
        elif name:
            body.append(line)
    return out


def _digests(ns: str) -> dict[str, str]:
    """The ``chain_digests`` elements: chain name (the element's comment) to digest."""
    elements = listing(ns)["sets"]["chain_digests"]["elements"]
    return {
        e["elem"]["comment"]: str(e["elem"]["val"])
        for e in elements
        if isinstance(e, dict) and "comment" in e["elem"]
    }


def test_an_agent_converges_a_table_of_the_whole_mark_layout(kube: E2E) -> None:
    """A table written when kpng kept its register in the whole packet mark (overwriting a
    CNI's bits) is rewritten at the agent's start: the register off the packet mark, which
    only the masquerade bit is set, tested and cleared on."""
    ns = kube.c.node_ns("node-1")
    kube.apply(service("web", IP, nodePort=NODE_PORT), endpoints("web", [kube.pod("pod-2-1")]))
    serves(kube, "node-1")
    before = listing(ns)
    kube.c.stop_agent("node-1")
    _load(ns, _whole_mark_layout(ns))
    old = nft(ns, "list", "table", "ip", "kpng")
    assert "meta mark set ip daddr . meta l4proto . th dport map @service_ips" in old
    assert "nat_input" not in old and "ct mark" not in old  # neither chain nor digest
    kube.c.start_agent("node-1", "--sync-period", "5")
    serves(kube, "node-1")
    got = listing(ns)
    # a pick chain no target uses any more stays until a full sync (kpng.dataplane.nft.picks):
    # the restart's full sync may drop some that were there before
    assert got["chains"].keys() <= before["chains"].keys()
    assert got["chains"] == {k: v for k, v in before["chains"].items() if k in got["chains"]}
    assert {k for k in before["chains"].keys() - got["chains"].keys() if k[:5] != "pick_"} == set()
    table = nft(ns, "list", "table", "ip", "kpng")
    rules = [r.strip() for r in table.splitlines() if not r.strip().startswith("typeof")]
    assert mark_uses(rules) == {"set | 0x4000", "test & 0x4000 != 0", "set & 0xffffbfff"}
    assert "ct mark set ip daddr . meta l4proto . th dport map @service_ips" in table
