"""Load spread with real connections: many endpoints (extra addresses of one pod, each an
endpoint of its own), 2,000 new connections from one pod, counted per endpoint and tested
against uniform with a chi-squared statistic; and an endpoint set changed during a run."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace

import pytest

from kpng_netns.cluster import CLIENT
from kpng_netns.netns import sh
from tests.e2e.cluster import E2E, endpoint, endpoints, service

pytestmark = pytest.mark.netns

# chi-squared critical values at p = 0.001 for k - 1 degrees of freedom (scipy.stats.chi2.isf)
CRITICAL = {9: 27.877, 99: 148.230, 4: 18.467}


def chi_squared(counts: Counter[str], keys: list[str], total: int) -> float:
    expected = total / len(keys)
    return sum((counts.get(k, 0) - expected) ** 2 / expected for k in keys)


def addresses(count: int) -> list[str]:
    return [f"10.244.2.{100 + i}" for i in range(count)]


@pytest.fixture(scope="module")
def spread(kube: E2E) -> E2E:
    """pod-2-1 answers on 10.244.2.100-199 too (/32s beside its own)."""
    batch = "".join(f"addr add {ip}/32 dev eth0\n" for ip in addresses(100))
    ns = kube.c.pod_ns("pod-2-1")
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
    return kube


def run(e2e: E2E, ip: str, count: int) -> list[tuple[float, str]]:
    argv = [sys.executable, str(CLIENT), "spread", "tcp", ip, "80", str(count)]
    out = sh(*argv, ns=e2e.c.pod_ns("pod-1-1"), timeout=300)
    return [(float(t), a) for t, a in (line.split(maxsplit=1) for line in out.splitlines())]


def slice_of(e2e: E2E, name: str, ips: list[str]) -> dict[str, object]:
    pod = e2e.pod("pod-2-1")
    return endpoints(name, [endpoint(replace(pod, ip=ip)) for ip in ips])


@pytest.mark.parametrize("count", [10, 100])
def test_new_connections_spread_uniformly_over_the_endpoints(spread: E2E, count: int) -> None:
    ips = addresses(count)
    spread.apply_and_wait(service("wide", "10.96.8.1"), slice_of(spread, "wide", ips))
    answers = [a for _, a in run(spread, "10.96.8.1", 2000)]
    counts = Counter(answers)
    assert sum(counts.values()) == 2000, counts.most_common(3)
    # every endpoint served: one of 100 gets none of 2,000 with probability 100 x e^-20
    assert set(counts) == set(ips), set(ips) ^ set(counts)
    stat = chi_squared(counts, ips, 2000)
    assert stat < CRITICAL[count - 1], (stat, sorted(counts.values()))


def test_no_connection_reaches_a_removed_endpoint_once_the_change_is_programmed(
    spread: E2E,
) -> None:
    before, after = addresses(10), addresses(10)[:5]
    spread.apply_and_wait(service("moving", "10.96.8.2"), slice_of(spread, "moving", before))
    argv = [sys.executable, str(CLIENT), "spread", "tcp", "10.96.8.2", "80", "100000", "6"]
    proc = subprocess.Popen(
        ["ip", "netns", "exec", spread.c.pod_ns("pod-1-1"), *argv],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        spread.apply_and_wait(service("moving", "10.96.8.2"), slice_of(spread, "moving", after))
        programmed = time.time()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [(float(t), a) for t, a in (line.split(maxsplit=1) for line in out.splitlines())]
    early = Counter(a for t, a in lines if t < programmed)
    late = Counter(a for t, a in lines if t > programmed + 0.1)
    assert set(early) > set(after), early  # removed endpoints served before the change
    assert set(late) == set(after) and sum(late.values()) > 200, late
    assert chi_squared(late, after, sum(late.values())) < CRITICAL[4]
