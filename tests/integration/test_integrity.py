"""Integrity over a real nats-server, with authentication off: a delta forged by an outsider
(the current epoch, the next seq, on the node's subject) is undone within a tick interval."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from kpng.bus.codec import Delta, encode
from kpng.bus.nats import connect
from kpng.diff import DeleteEndpoint
from tests.integration.harness import Deployment, service, slice_, wait_until, web_on_n1

pytestmark = pytest.mark.integration


async def test_a_forged_delta_is_undone_within_a_tick_interval(deployment: Deployment) -> None:
    deployment.write_cluster(web_on_n1("10.244.1.1"))
    deployment.start_nats()
    deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    await asyncio.sleep(2 * deployment.tick_interval)  # quiet: the last tick is out
    dump = deployment.dump("n1")
    assert dump is not None
    outsider = await connect(deployment.url, retry_forever=False)
    try:
        ops = (DeleteEndpoint("default/web", "10.244.1.1"),)
        forged = Delta(dump["epoch"], dump["seq"] + 1, time.time(), None, ops)
        started = time.monotonic()
        await outsider.publish(outsider.subjects.node_delta("n1"), encode(forged))
        await outsider.flush()
        log = deployment.agents["n1"].log
        wait_until("the forged delta noticed", lambda: "behind the applied" in log(), 5)
        wait_until("n1 repaired", lambda: deployment.converged("n1"), 5)
        assert time.monotonic() - started <= deployment.tick_interval + 1.0
        # the forged delta was applied (its seq ran ahead), then a full snapshot replaced it
        assert f"tick at seq {dump['seq']}, behind the applied {dump['seq'] + 1}" in log()
        assert log().count("full snapshot at seq") == 2, log()
    finally:
        await outsider.close()


def _rollout() -> list[dict[str, Any]]:
    """default/roll: ports http and metrics; the new pod is ready and lists http only, the
    old one terminates (still serving) and lists both, so the node view marks the old pod
    for metrics (kpng.fanout.views)."""
    svc = service("roll", "10.96.0.20")
    svc["spec"]["ports"].append({"name": "metrics", "port": 9090, "targetPort": 9090})
    new = slice_("roll", [("10.244.1.5", "n1")], name="roll-new")
    old = slice_("roll", [("10.244.1.6", "n1")], name="roll-old")
    old["ports"].append({"name": "metrics", "port": 9090, "protocol": "TCP"})
    old["endpoints"][0]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    return [*web_on_n1("10.244.1.1"), svc, new, old]


async def test_a_view_with_port_marks_has_the_watchers_digest(deployment: Deployment) -> None:
    """The agent's view, port marks and all, is the watcher's: its ticks' digests match, so
    the agent takes no snapshot after its first."""
    deployment.write_cluster(_rollout())
    deployment.start_nats()
    deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    dump = deployment.dump("n1")
    assert dump is not None
    (old,) = [e for e in dump["services"]["default/roll"]["endpoints"] if e["ip"] == "10.244.1.6"]
    assert old["port_marks"] == [["metrics", "TCP", 8]]
    await asyncio.sleep(4 * deployment.tick_interval)  # ticks with digests go by
    log = deployment.agents["n1"].log()
    assert log.count("full snapshot at seq") == 1, log
    assert "differs from" not in log, log
