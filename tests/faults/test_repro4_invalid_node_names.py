"""Issue 14, reproduction 4: a Node named ``*``, ``>`` or with a space crashed the watcher on
every start (``ValueError: invalid node name`` in ``Publisher._send``). Now such a Node is
skipped and counted as an invalid object, and every other node is served."""

from __future__ import annotations

import pytest

from tests.integration.harness import Deployment, node, service, slice_

pytestmark = pytest.mark.integration

BAD_NAMES = ["*", ">", "a b", "Node_1"]


def test_repro4_nodes_named_wildcards_or_with_spaces_are_skipped(deployment: Deployment) -> None:
    bad = [node(name, "z1", f"192.168.0.{i + 10}") for i, name in enumerate(BAD_NAMES)]
    deployment.write_cluster(
        [
            *bad,
            node("n1", "z1", "192.168.0.1"),
            service("web", "10.96.0.10"),
            slice_("web", [("10.244.1.1", "n1")]),
        ]
    )
    deployment.start_nats()
    watcher = deployment.start_watcher()
    deployment.start_agent("n1")
    deployment.wait_converged("n1")
    deployment.write_cluster(
        [
            *bad,
            node("n1", "z1", "192.168.0.1"),
            service("web", "10.96.0.10"),
            slice_("web", [("10.244.1.2", "n1")]),
        ]
    )
    deployment.wait_converged("n1")  # still publishing after the restart-free reload
    assert watcher.running
    log = watcher.log_path.read_text()
    for name in BAD_NAMES:
        assert f"Node {name!r}: metadata.name" in log
    assert "Traceback" not in log
