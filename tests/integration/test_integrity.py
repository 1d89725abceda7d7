"""Integrity over a real nats-server, with authentication off: a delta forged by an outsider
(the current epoch, the next seq, on the node's subject) is undone within a tick interval."""

from __future__ import annotations

import asyncio
import time

import pytest

from kpng.bus.codec import Delta, encode
from kpng.bus.nats import connect
from kpng.diff import DeleteEndpoint
from tests.integration.harness import Deployment, wait_until, web_on_n1

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
