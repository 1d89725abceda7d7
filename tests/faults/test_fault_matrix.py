"""The fault matrix (issue 14) against real processes: nats-server, the watcher, dump agents
(and the Kubernetes API simulator). Each fault ends with every agent holding the cluster's
current view (nothing lost); the convergence time is measured from the recovery and bounded
generously here (the figures, from ``make reliability``, are in docs/reliability.md).

The same faults elsewhere, on virtual time (exact tick-interval bounds): a lost delta, a
slow consumer, a reconnect, a forged delta in tests/component/test_faults.py; the catch-up
after a NATS restart in tests/integration/test_catchup.py; a NATS cluster member killed in
tests/integration/test_nats_cluster.py; the watcher's leader killed in
tests/kube/test_kube_failover.py; garbage on the bus in tests/integration/test_stream_faults.py.
"""

from __future__ import annotations

import pytest

from kpng_apisim import ApiSimulator
from tests.apisim.conftest import sim as sim  # the simulator fixture, shared
from tests.faults import matrix
from tests.integration.harness import Deployment
from tests.kube.conftest import kube as kube
from tests.kube.deploy import KubeDeployment

pytestmark = pytest.mark.integration

BOUND = 10.0  # seconds after recovery; measured: see docs/reliability.md


def test_watcher_kill_9_agents_keep_state_and_converge(deployment: Deployment) -> None:
    outcome = matrix.watcher_kill(deployment)
    assert outcome.seconds < BOUND, outcome


def test_nats_kill_9_and_restart_the_edit_made_meanwhile_arrives(deployment: Deployment) -> None:
    outcome = matrix.nats_kill(deployment)
    assert outcome.seconds < BOUND, outcome
    assert "reconnected" in deployment.agents["n1"].log()


def test_agent_kill_9_under_steady_changes_converges(deployment: Deployment) -> None:
    outcome = matrix.agent_kill(deployment)
    assert outcome.seconds < BOUND, outcome


def test_a_lost_delta_is_noticed_and_caught_up(deployment: Deployment) -> None:
    outcome = matrix.lost_delta(deployment)  # checks the catch-up was logged
    assert outcome.seconds < BOUND, outcome
    assert outcome.excluded <= 2 * matrix.TICK_INTERVAL, outcome


def test_a_slow_consumer_is_cut_off_and_recovers(deployment: Deployment) -> None:
    outcome = matrix.slow_consumer(deployment)
    assert outcome.seconds < BOUND, outcome
    assert deployment.agents["n1"].running


async def test_the_api_server_answering_410_gone_makes_the_watcher_relist(
    sim: ApiSimulator, kube: KubeDeployment
) -> None:
    outcome = await matrix.api_gone(sim, kube)
    assert outcome.seconds < BOUND, outcome


async def test_the_api_server_going_away_and_back_with_410(
    sim: ApiSimulator, kube: KubeDeployment
) -> None:
    outcome = await matrix.api_away(sim, kube)
    assert outcome.seconds < BOUND, outcome
