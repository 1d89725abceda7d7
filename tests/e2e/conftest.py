from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpng_netns.topology import WIRINGS, Wiring
from tests.e2e.cluster import E2E
from tests.e2e.netns import Cluster, remove_leftovers


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.fail("the netns tests need root and nft (run them with -m 'not netns' otherwise)")
    c = Cluster()
    try:
        c.build()
        yield c
    finally:
        c.close()
        remove_leftovers()


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """A 2-node namespace cluster running kpng over NATS (shared by a module's tests)."""
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.fail("the netns tests need root and nft (run them with -m 'not netns' otherwise)")
    e2e = E2E(tmp_path_factory.mktemp("netns-cluster"))
    try:
        e2e.start()
        yield e2e
    finally:
        e2e.close()


def _started(
    workdir: Path, wiring: Wiring, dual_stack: bool, agent_args: tuple[str, ...] = ()
) -> Iterator[E2E]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.fail("the netns tests need root and nft (run them with -m 'not netns' otherwise)")
    e2e = E2E(workdir, wiring=wiring, dual_stack=dual_stack, agent_args=agent_args)
    try:
        e2e.start()
        yield e2e
    finally:
        e2e.close()


@pytest.fixture(scope="module", params=WIRINGS)
def wired(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[E2E]:
    """The cluster of :func:`kube`, once per pod wiring (routed /32s; a shared L2 bridge with
    br_netfilter and hairpin ports): a module's tests run on each, one cluster at a time."""
    yield from _started(tmp_path_factory.mktemp(f"netns-{request.param}"), request.param, False)


@pytest.fixture(scope="module", params=WIRINGS)
def dual(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    """:func:`wired` dual-stack: an IPv6 underlay and IPv6 pod CIDRs beside the IPv4 ones. On
    the first wiring the agents write the IPv6 table of every full sync from a forked child
    (``--parallel-families-above 1``), on the other in their own process."""
    workdir = tmp_path_factory.mktemp(f"netns-dual-{request.param}")
    fork = ("--parallel-families-above", "1") if request.param == WIRINGS[0] else ()
    yield from _started(workdir, request.param, True, fork)
