"""kpng-watcher --source kube as a process; kubectl drives the simulator; dumps checked."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from kpng_apisim import ApiSimulator
from tests.apisim.conftest import Kubectl

from .deploy import DeltaLog, KubeDeployment, eventually
from .objects import PROXY_NAME_LABEL, endpoint_slice, node, service

pytestmark = pytest.mark.kube


def manifest(*objects: dict[str, object]) -> str:
    return yaml.safe_dump_all(objects)


def endpoints_of(kube: KubeDeployment, node_name: str, key: str) -> list[str]:
    dump = kube.dump(node_name) or {}
    entry = dump.get("services", {}).get(key)
    return [e["ip"] for e in entry["endpoints"]] if entry else []


async def serving_web(sim: ApiSimulator, kube: KubeDeployment) -> None:
    """Node n1 and service default/web in the API, the watcher and n1's agent converged."""
    sim.store.create("nodes", node("n1"))
    sim.store.create("services", service("web", "10.96.0.10"))
    kube.start("n1")
    await kube.wait_converged("n1")


async def test_create_modify_delete_with_kubectl(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment, delta_log: DeltaLog
) -> None:
    await kube.start_logged("n1", delta_log)
    await kubectl("apply", "-f", "-", stdin=manifest(service("web", "10.96.0.10")))
    await kube.wait_converged("n1")
    trigger = "2024-05-01T10:00:00Z"
    web_1 = endpoint_slice("web", [("10.244.1.1", "n1"), ("10.244.1.2", "n1")], trigger=trigger)
    await kubectl("apply", "-f", "-", stdin=manifest(web_1))
    await eventually("endpoints", lambda: len(endpoints_of(kube, "n1", "default/web")) == 2)
    # the test's own subscriber may hear the delta after the agent applied it
    await eventually(
        "trigger time", lambda: any(d.trigger_time == 1714557600.0 for d in delta_log.deltas)
    )
    # A second slice, with one address also in the first (a transition): merged, counted once.
    web_2 = endpoint_slice("web", [("10.244.1.2", "n1"), ("10.244.1.3", "n1")], name="web-2")
    await kubectl("apply", "-f", "-", stdin=manifest(web_2))
    await eventually("merged", lambda: len(endpoints_of(kube, "n1", "default/web")) == 3)
    await kube.wait_converged("n1")
    await kubectl("apply", "-f", "-", stdin=manifest(service("web", "10.96.0.10", port=81)))
    await eventually("port 81", lambda: '"port": 81' in json.dumps(kube.dump("n1")))
    await kubectl("delete", "endpointslice", "web-1")
    await eventually("web-1 gone", lambda: len(endpoints_of(kube, "n1", "default/web")) == 2)
    await kubectl("delete", "service", "web")
    await eventually("web gone", lambda: "default/web" not in (kube.dump("n1") or {})["services"])
    await kube.wait_converged("n1")


async def test_slices_before_their_service_are_kept(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    sim.store.create("nodes", node("n1"))
    kube.start("n1")
    await kubectl("apply", "-f", "-", stdin=manifest(endpoint_slice("late", [("10.244.2.1", "")])))
    await kube.wait_converged("n1")
    await kubectl("apply", "-f", "-", stdin=manifest(service("late", "10.96.0.11")))
    await eventually(
        "endpoints", lambda: endpoints_of(kube, "n1", "default/late") == ["10.244.2.1"]
    )


async def test_cut_watch_resumes_without_loss_or_relist(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    await serving_web(sim, kube)
    await eventually("3 watches", lambda: sim.store.watch_count == 3)
    assert sim.cut_watches() == 3
    await kubectl("apply", "-f", "-", stdin=manifest(endpoint_slice("web", [("10.244.1.1", "n1")])))
    await kubectl("apply", "-f", "-", stdin=manifest(service("api", "10.96.0.12")))
    await kube.wait_converged("n1")
    assert "default/api" in (kube.dump("n1") or {})["services"]
    for resource in ("services", "endpointslices", "nodes"):
        assert sim.request_count("list", resource) == 1, resource
        assert sim.request_count("watch", resource) >= 2, resource


async def test_compaction_relists_without_spurious_deletes(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment, delta_log: DeltaLog
) -> None:
    sim.store.create("nodes", node("n1"))
    for name, ip in (("a", "10.96.0.21"), ("b", "10.96.0.22"), ("gone", "10.96.0.23")):
        sim.store.create("services", service(name, ip))
        sim.store.create("endpointslices", endpoint_slice(name, [(f"10.244.0.{ip[-1]}", "n1")]))
    kube.start("n1")
    await delta_log.start(kube.base.url, "n1")
    await kube.wait_converged("n1")
    sim.cut_watches()  # while cut: one service added, one deleted, then history compacted
    sim.store.create("services", service("c", "10.96.0.24"))
    sim.store.delete("services", "gone", "default")
    sim.compact()
    await kube.wait_converged("n1")
    await eventually("relists", lambda: sim.request_count("list", "services") == 2)
    await eventually("relists", lambda: sim.request_count("list", "endpointslices") == 2)
    await kube.wait_converged("n1")
    assert delta_log.deleted() == {"-svc default/gone"}, delta_log.deleted()
    assert "relisting" in kube.watcher_log()


async def test_simulator_restart_is_survived(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    await serving_web(sim, kube)
    await sim.restart()
    await kubectl("apply", "-f", "-", stdin=manifest(service("after", "10.96.0.13")))
    await kube.wait_converged("n1", timeout=15)
    await sim.restart(keep_store=False)  # an etcd restore: every resourceVersion is gone
    sim.store.create("nodes", node("n1"))
    sim.store.create("services", service("restored", "10.96.0.14"))
    await kube.wait_converged("n1", timeout=15)
    assert set((kube.dump("n1") or {})["services"]) == {"default/restored"}


async def test_service_proxy_name_label_takes_a_service_down_and_back(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    await serving_web(sim, kube)

    def served() -> bool:
        return "default/web" in (kube.dump("n1") or {}).get("services", {})

    for label in (PROXY_NAME_LABEL, "service.kubernetes.io/headless"):
        await kubectl("label", "service", "web", f"{label}=other")
        await eventually(f"{label}: down", lambda: not served())
        await kubectl("label", "service", "web", f"{label}-")
        await eventually(f"{label} removed: back", served)


async def test_service_proxy_name_mode_serves_only_its_services(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    mine = {PROXY_NAME_LABEL: "kpng"}
    sim.store.create("nodes", node("n1"))
    sim.store.create("services", service("plain", "10.96.0.10"))
    sim.store.create("services", service("mine", "10.96.0.11", labels=mine))
    kube.start("n1", proxy_name="kpng")
    await kube.wait_converged("n1")
    slice_ = endpoint_slice("mine", [("10.244.1.1", "n1")], labels=mine)
    await kubectl("apply", "-f", "-", stdin=manifest(slice_))
    await eventually(
        "endpoints", lambda: endpoints_of(kube, "n1", "default/mine") == ["10.244.1.1"]
    )
    assert set((kube.dump("n1") or {})["services"]) == {"default/mine"}
    await kubectl("label", "service", "plain", f"{PROXY_NAME_LABEL}=kpng")
    await eventually("plain joins", lambda: "default/plain" in (kube.dump("n1") or {})["services"])


async def test_malformed_objects_are_skipped_and_the_rest_flows(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    sim.store.create("nodes", node("n1"))
    kube.start("n1")
    await kube.wait_converged("n1")
    bad = endpoint_slice("web", [("10.244.1.999", "n1")], name="bad")
    good = endpoint_slice("web", [("10.244.1.1", "n1")])
    await kubectl("apply", "-f", "-", stdin=manifest(service("web", "10.96.0.10"), bad, good))
    await kubectl("apply", "-f", "-", stdin=manifest(service("bad-port", port=70000)))
    await eventually(
        "good flows", lambda: endpoints_of(kube, "n1", "default/web") == ["10.244.1.1"]
    )
    await kube.wait_converged("n1")
    log = kube.watcher_log()
    assert "kube EndpointSlice default/bad: endpoints[0].addresses[0]: '10.244.1.999'" in log
    assert "kube Service default/bad-port: spec.ports[0].port: 70000 is out of range" in log


async def test_a_nodes_pod_cidrs_and_deletion_reach_its_agent(
    sim: ApiSimulator, kubectl: Kubectl, kube: KubeDeployment
) -> None:
    """spec.podCIDRs, and the cluster autoscaler's taint or a deletionTimestamp, read by
    kubernetes-asyncio's watch of a Node kubectl changed, reach the node's view (what
    --detect-local-mode NodeCIDR tells pods by; what fails its /healthz)."""
    await serving_web(sim, kube)

    def info() -> dict[str, Any]:
        return dict((kube.dump("n1") or {}).get("nodeInfo") or {})

    given = node("n1")
    given["spec"] = {"podCIDR": "10.244.7.0/24", "podCIDRs": ["10.244.7.0/24", "fd00:7::/64"]}
    await kubectl("apply", "-f", "-", stdin=manifest(given))
    await eventually(
        "pod CIDRs", lambda: info().get("pod_cidrs") == ["10.244.7.0/24", "fd00:7::/64"]
    )
    assert "deleting" not in info()
    given["spec"]["taints"] = [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]
    await kubectl("apply", "-f", "-", stdin=manifest(given))
    await eventually("deleting", lambda: info().get("deleting") is True)
    del given["spec"]["taints"]
    await kubectl("apply", "-f", "-", stdin=manifest(given))
    await eventually("not deleting", lambda: "deleting" not in info())
    await kube.wait_converged("n1")
