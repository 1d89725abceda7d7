"""The bench's synthetic clusters: every stack gives each service its families' addresses."""

from __future__ import annotations

import ipaddress

import pytest

from kpng.dataplane.nft.planner import Planner
from kpng.dataplane.nft.skeleton import Config
from kpng_bench.workload import node_view


def families(ips: object) -> set[int]:
    return {ipaddress.ip_address(ip).version for ip in ips}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("stack", "want"), [("ipv4", {4}), ("ipv6", {6}), ("dual", {4, 6})])
def test_each_service_and_the_node_have_the_stacks_families(stack: str, want: set[int]) -> None:
    v = node_view(3, 10, stack)
    assert families(v.nodes["bench-node"].addresses) == want
    for key, svc in v.services.items():
        assert families(svc.cluster_ips) == want
        eps = v.endpoints_of(key)
        assert families(eps) == want and len(eps) == 10 * len(want)


def endpoints(stack: str, family: int) -> set[bytes]:
    tx = Planner(Config(family=family)).plan_full(node_view(3, 10, stack), None)
    return {e for _, lay, es in tx.packed if lay.name.startswith("endpoints_") for e in es}


def test_a_dual_stack_table_holds_what_the_single_stack_one_does() -> None:
    # 3 node-port services x 10 endpoints, for an internal and an external target each
    assert endpoints("dual", 4) == endpoints("ipv4", 4) and len(endpoints("dual", 4)) == 60
    assert endpoints("dual", 6) == endpoints("ipv6", 6) and len(endpoints("dual", 6)) == 60
    assert not endpoints("ipv4", 6)


def test_each_other_stack_is_compared_with_ipv4_at_its_size() -> None:
    from kpng_bench.__main__ import stack_ratios

    def run(stack: str, size: int, seconds: float, cpu: float, handed: float = 0.0) -> dict:  # type: ignore[type-arg]
        full = {"seconds": seconds, "cpu": cpu, "plan_handed_back": handed}
        return {"stack": stack, "services": size, "full_sync": full}

    lines = stack_ratios(
        [
            run("ipv4", 100, 0.1, 0.1),
            run("ipv4", 10000, 0.5, 0.5),
            run("dual", 10000, 0.6, 1.1, 0.13),
        ]
    )
    assert lines == [
        "dual 10000: full sync 1.20x of IPv4's (0.60 s against 0.50 s; CPU 2.20x; a forked"
        " family's plan handed back 0.13 s later)"
    ]
