"""1,000 services and their slices created in one kubectl burst reach the agent coalesced."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml

from kpng_apisim import ApiSimulator
from tests.apisim.conftest import Kubectl

from .deploy import DeltaLog, KubeDeployment, eventually
from .objects import endpoint_slice, service

pytestmark = pytest.mark.kube

SERVICES = 1000
CHUNK = 100


async def test_a_burst_of_1000_services_is_coalesced(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment, delta_log: DeltaLog
) -> None:
    await kube.start_logged("n1", delta_log)
    await kube.wait_converged("n1")
    objects = []
    for i in range(SERVICES):
        objects.append(service(f"s{i:04d}"))
        objects.append(endpoint_slice(f"s{i:04d}", [(f"10.244.{i // 250}.{i % 250 + 1}", "n1")]))
    started = time.monotonic()
    # Several kubectl processes at once: one alone is held back by its client-side rate limit.
    chunks = [objects[i : i + CHUNK] for i in range(0, len(objects), CHUNK)]
    await asyncio.gather(
        *(kubectl("create", "-f", "-", stdin=yaml.safe_dump_all(c)) for c in chunks)
    )
    created = time.monotonic() - started

    def done() -> bool:
        services = (kube.dump("n1") or {}).get("services", {})
        return len(services) == SERVICES and all(s["endpoints"] for s in services.values())

    await eventually("1000 services with endpoints", done, timeout=60)
    converged = time.monotonic() - started
    await kube.wait_converged("n1")
    messages = len(delta_log.deltas)
    print(
        f"\nburst: {SERVICES} services + {SERVICES} slices; kubectl {created:.1f}s; "
        f"converged after {converged:.1f}s; {messages} delta messages to node n1"
    )
    # 2,000 API objects; without coalescing a node would get one delta per object.
    assert messages <= SERVICES // 5, messages
