"""The packet mark: kpng owns one bit of it (the masquerade bit, 14 by default, as
kube-proxy's ``--iptables-masquerade-bit``), ORs it in, tests it and clears it; every other
bit is another component's (a CNI's) and goes through kpng's chains as it came."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from kpng.dataplane.nft.skeleton import Config, chains
from kpng.model import TrafficPolicy
from tests.nft.helpers import CONFIG, NODE, NODE_IP, Harness, ep, svc, view

POD = "10.244.1.5"
OUTSIDE = "172.16.0.9"
OTHER = 0x10000 | 0x0F00 | 0x1  # bits a CNI keeps in the mark (Calico-, Cilium-like)

_META_MARK = re.compile(r"meta mark( set meta mark)? ([&|]) (0x[0-9a-f]+)( != 0x0+)?")


def mark_uses(rules: list[str]) -> set[str]:
    """Each use of the packet mark in ``rules``, spelt generically; an unexpected form
    (the whole mark set from a map, compared whole, ...) is returned as it is."""
    out = set()
    for rule in rules:
        rest = rule
        for m in _META_MARK.finditer(rule):
            setting, op, value, test = m.groups()
            value = f"{int(value, 16):#x}"  # as nft lists it (0x00004000) or as kpng writes it
            out.add(f"{'set' if setting else 'test'} {op} {value}{' != 0' if test else ''}")
            rest = rest.replace(m.group(0), "")
        if "meta mark" in rest:
            out.add(rest)
    return out


def all_rules(h: Harness) -> list[str]:
    return [r for c in h.nft.state(h.config.nft_table).chains.values() for r in c.rules]


def _programmed(h: Harness, affinity: bool = False) -> Harness:
    """A Cluster-policy NodePort with an external IP, an eTP Local service with a local
    endpoint and an external IP, and (``affinity``) a service with session affinity."""
    local = svc(
        "l",
        ip="10.96.0.11",
        np=30081,
        external_traffic_policy=TrafficPolicy.LOCAL,
        external_ips=("172.16.1.2",),
    )
    sticky = (svc("s", ip="10.96.0.12", affinity_timeout=30), [ep("10.244.2.2")])
    h.full(
        view(
            (svc("a", np=30080, external_ips=("172.16.1.1",)), [ep("10.244.2.1")]),
            *([sticky] if affinity else []),
            (local, [ep("10.244.1.7", node=NODE)]),
        )
    )
    return h


@pytest.mark.parametrize("bit", [14, 0, 5, 31])
def test_rules_set_test_and_clear_only_the_masquerade_bit(bit: int) -> None:
    config = replace(CONFIG, masquerade_bit=bit, masquerade_all=True)
    h = _programmed(Harness(config), affinity=True)
    m, inverse = 1 << bit, ~(1 << bit) & 0xFFFFFFFF
    assert mark_uses(all_rules(h)) == {
        f"set | {m:#x}",  # mark-for-masquerade: OR the bit in
        f"test & {m:#x} != 0",  # masquerading: only that bit is tested...
        f"set & {inverse:#x}",  # ...and cleared (kube-proxy xors it out)
    }
    post = h.nft.state(h.config.nft_table).chains["nat_postrouting"].rules
    masq = [r for r in post if r.endswith("masquerade fully-random") and "meta mark" in r]
    assert masq == [
        f"meta mark & {m:#x} != 0x0 meta mark set meta mark & {inverse:#x} masquerade fully-random"
    ]


def test_the_skeleton_of_every_configuration_keeps_the_register_off_the_packet_mark() -> None:
    for c in (Config(), Config(family=6, masquerade_all=True, pod_cidrs=("fd00::/64",))):
        rules = [r for ch in chains(c) for r in ch.rules]
        assert mark_uses(rules) == {"set | 0x4000", "test & 0x4000 != 0", "set & 0xffffbfff"}
        assert any(r.startswith("ct mark set ") and "@service_ips" in r for r in rules)


def test_other_mark_bits_survive_every_nat_path() -> None:
    h = _programmed(Harness())
    cases = [
        (POD, "10.96.0.10", 80, "pod", False),  # cluster IP from a pod: no SNAT
        (OUTSIDE, "10.96.0.10", 80, "outside", True),  # off the pod network: SNAT
        (OUTSIDE, NODE_IP, 30080, "outside", True),  # NodePort, Cluster policy
        (OUTSIDE, "172.16.1.1", 80, "outside", True),  # external IP, Cluster policy
        (OUTSIDE, "172.16.1.2", 80, "outside", False),  # eTP Local keeps the source
        (NODE_IP, "172.16.1.2", 80, "node", True),  # eTP Local short-circuit from the node
    ]
    for src, dst, port, origin, masq in cases:
        for before in (0, OTHER, OTHER | 0x4000):
            t = h.trace(src, dst, port, origin=origin, mark=before)
            assert t.verdict == "dnat", (src, dst, port)
            # a bit 14 set by someone else also asks for masquerade, as with kube-proxy
            assert t.masquerade == (masq or bool(before & 0x4000)), (src, dst, port, before)
            assert t.mark == before & ~0x4000, (src, dst, port, hex(before), hex(t.mark))
            assert t.conntrack_mark == 0


def test_another_masquerade_bit_moves_the_bit_and_leaves_14_alone() -> None:
    h = Harness(replace(CONFIG, masquerade_bit=20))
    h.full(view((svc("a"), [ep("10.244.2.1")])))
    t = h.trace(OUTSIDE, "10.96.0.10", 80, mark=0x4000 | OTHER)
    assert t.masquerade and t.mark == 0x4000 | OTHER
    t = h.trace(POD, "10.96.0.10", 80, mark=0x4000 | OTHER)
    assert not t.masquerade and t.mark == 0x4000 | OTHER
    t = h.trace(POD, "10.96.0.10", 80, mark=1 << 20 | OTHER)
    assert t.masquerade and t.mark == OTHER


@pytest.mark.parametrize("bit", [-1, 32, 40])
def test_a_masquerade_bit_out_of_range_is_refused(bit: int) -> None:
    with pytest.raises(ValueError, match=f"masquerade bit {bit} is not in 0..31"):
        Config(masquerade_bit=bit)


def test_only_a_connection_to_a_service_gets_its_conntrack_mark_read() -> None:
    """``dispatch`` looks services up and goes to ``dispatch_service``; nothing else reads
    the conntrack mark, so another component's (with bits like kpng's flags) is left alone."""
    for c in (Config(), Config(family=6, masquerade_all=True, pod_cidrs=("fd00::/64",))):
        dispatch = {ch.name: ch.rules for ch in chains(c)}["dispatch"]
        assert dispatch and all(r.endswith("goto dispatch_service") for r in dispatch)
        assert not any("ct mark &" in r or "ct mark ==" in r for r in dispatch)
    h = Harness()
    h.full(view((svc("a", np=30080), [ep("10.244.2.1")])))
    foreign = 0x70000001  # kpng's masquerade, cluster and eTP Local flags, and an id
    t = h.trace(OUTSIDE, "10.244.2.1", 8080, origin="outside", ct_mark=foreign)
    assert (t.verdict, t.masquerade, t.conntrack_mark) == ("accept", False, foreign)
    t = h.trace(OUTSIDE, NODE_IP, 30080, origin="outside", ct_mark=foreign)
    assert (t.verdict, t.endpoint_ips, t.conntrack_mark) == ("dnat", {"10.244.2.1"}, 0)


def test_kpngs_register_carries_its_own_bit_and_only_that_is_cleared() -> None:
    """Bit 31 of the conntrack mark says "kpng's register": the clears (nat postrouting,
    nat input) and the affinity update read only connections that carry it."""
    h = _programmed(Harness(), affinity=True)
    elements = h.nft.state(h.config.nft_table).elements.values()
    values = [
        int(e.value[0])
        for e in elements
        if e.set in ("service_ips", "service_nodeports", "shortcuts") and e.value
    ]
    assert values and all(v & 0x80000000 for v in values)
    chains_ = h.nft.state(h.config.nft_table).chains
    for name in ("nat_postrouting", "nat_input"):
        clears = [r for r in chains_[name].rules if r.endswith("ct mark set 0x0")]
        assert clears == ["ct mark & 0x80000000 != 0x0 ct mark set 0x0"], name
    [aff] = [r for r in chains_["nat_postrouting"].rules if "@aff_update" in r]
    assert aff.startswith("ct mark & 0x80000000 != 0x0 ")
