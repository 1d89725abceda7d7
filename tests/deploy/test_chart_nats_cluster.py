"""The bundled NATS as a cluster (nats.bundled.cluster): a StatefulSet of servers with routes
between them (TLS both ways when secured), one per node, a PodDisruptionBudget, and every
component given every server's URL. Rendered by a real helm; the rendered nats.conf also
runs: three real nats-servers form a cluster from it and carry a delta across."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from kpng.bus.auth import BusAuth
from kpng.bus.nats import connect
from kpng.bus.subjects import Subjects
from kpng_auth.pki import make_tls
from kpng_devrun.procs import ProcessGroup, free_ports, nats_server_argv, wait_for_port
from tests.deploy.helm import manifests, split_sources, template, values_args
from tests.deploy.test_chart import components, nats_conf, of, pod_spec, volume_path

HOSTS = [f"kpng-nats-{i}.kpng-nats-cluster.kube-system.svc" for i in range(3)]
LABELS = {
    "app.kubernetes.io/name": "kpng",
    "app.kubernetes.io/instance": "kpng",
    "app.kubernetes.io/component": "nats",
}


def _urls(name: str) -> set[str]:
    """Every component's --nats."""
    return {c["args"][c["args"].index("--nats") + 1] for _, _, c in components(name)}


def test_a_cluster_of_three_with_routes_anti_affinity_and_a_budget() -> None:
    assert not of("nats-cluster", "Deployment", "nats")
    (sts,) = of("nats-cluster", "StatefulSet", "nats")
    spec = pod_spec(sts)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["selector"]["matchLabels"] == LABELS
    # the headless Service that names each server, published before it is ready
    services = {s["metadata"]["name"]: s["spec"] for s in of("nats-cluster", "Service", "nats")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    assert {p["name"]: p["port"] for p in headless["ports"]} == {"client": 4222, "route": 6222}
    assert services["kpng-nats"]["selector"] == LABELS  # clients' Service: every server
    # never two servers on a node
    (term,) = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term == {
        "labelSelector": {"matchLabels": LABELS},
        "topologyKey": "kubernetes.io/hostname",
    }
    assert LABELS.items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    # a drain takes one server at a time
    (pdb,) = of("nats-cluster", "PodDisruptionBudget", "nats")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": LABELS}}
    # each server named after its pod, its routes port open
    (c,) = spec["containers"]
    assert c["args"][:2] == ["--name", "$(POD_NAME)"]
    env = {e["name"]: e["valueFrom"] for e in c["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["route"] == 6222


def test_the_routes_are_every_server_over_verified_tls() -> None:
    conf = nats_conf("nats-cluster")
    cluster = conf[conf.index("cluster {") :]
    routes = re.findall(r'"nats-route://([^"]+)"', cluster)
    assert routes == [f"{h}:6222" for h in HOSTS]
    assert 'name: "kpng-nats"' in cluster and "port: 6222" in cluster
    assert 'ca_file: "/etc/nats/tls/ca.crt"' in cluster and "verify: true" in cluster
    (sts,) = of("nats-cluster", "StatefulSet", "nats")
    spec = pod_spec(sts)
    (c,) = spec["containers"]
    assert volume_path(spec, c, "/etc/nats/tls/ca.crt") == ("kpng-nats-tls", "ca.crt")
    # the servers' certificate names each of them and authenticates a route's client side
    (cert,) = [o for o in of("nats-cluster", "Certificate") if o["metadata"]["name"] == "kpng-nats"]
    assert set(HOSTS) <= set(cert["spec"]["dnsNames"])
    assert cert["spec"]["usages"] == ["server auth", "client auth"]


def test_every_component_is_given_every_server() -> None:
    urls = _urls("nats-cluster")
    assert urls == {",".join(f"tls://{h}:4222" for h in HOSTS)}
    seen = {role for role, _, _ in components("nats-cluster")}
    assert seen == {"watcher", "agent", "observer"}


def test_size_port_spread_and_budget_are_values() -> None:
    name = "nats-cluster-tls-secret"
    (sts,) = of(name, "StatefulSet", "nats")
    spec = pod_spec(sts)
    assert sts["spec"]["replicas"] == 5
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert (
        term["weight"] == 100 and term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    )
    (pdb,) = of(name, "PodDisruptionBudget", "nats")
    assert pdb["spec"]["maxUnavailable"] == 2
    hosts = [f"kpng-nats-{i}.kpng-nats-cluster.kube-system.svc" for i in range(5)]
    assert _urls(name) == {",".join(f"tls://{h}:4333" for h in hosts)}
    routes = re.findall(r'"nats-route://([^"]+)"', nats_conf(name))
    assert routes == [f"{h}:6333" for h in hosts]


def test_an_insecure_cluster_routes_by_flags() -> None:
    files = split_sources(
        template(
            *values_args("insecure"),
            overrides={"nats": {"bundled": {"enabled": True, "cluster": {"enabled": True}}}},
        )
    )
    objs = manifests(files)
    assert not [o for o in objs if o["kind"] == "ConfigMap" and "nats" in o["metadata"]["name"]]
    (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
    (c,) = pod_spec(sts)["containers"]
    args = c["args"]
    assert args[args.index("--cluster") + 1] == "nats://0.0.0.0:6222"
    assert args[args.index("--routes") + 1] == ",".join(f"nats-route://{h}:6222" for h in HOSTS)
    nats = {
        a["args"][a["args"].index("--nats") + 1]
        for o in objs
        if o["kind"] in ("Deployment", "DaemonSet")
        for a in pod_spec(o)["containers"]
        if "--nats" in a.get("args", [])
    }
    assert nats == {",".join(f"nats://{h}:4222" for h in HOSTS)}


def test_without_the_option_one_server_as_before() -> None:
    assert len(of("cert-manager", "Deployment", "nats")) == 1
    assert not of("cert-manager", "StatefulSet") and not of("cert-manager", "PodDisruptionBudget")
    assert "cluster {" not in nats_conf("cert-manager")


# ---------------------------------------------------------------------------------------------
# the rendered configuration, run


def server_conf(tmp_path: Path, ports: list[tuple[int, int]], values: str = "nats-cluster") -> Path:
    """The chart's nats.conf for ``values``, run here: its TLS files made for 127.0.0.1, its
    routes to the (client, route) ``ports`` of three local servers."""
    tls = make_tls(tmp_path / "tls", ["127.0.0.1"], routes=True)
    text = nats_conf(values)
    text = text.replace("/etc/nats/tls/tls.crt", str(tls.cert))
    text = text.replace("/etc/nats/tls/tls.key", str(tls.key))
    text = text.replace("/etc/nats/tls/ca.crt", str(tls.ca))
    for host, (_, route) in zip(HOSTS, ports, strict=True):
        text = text.replace(f"{host}:6222", f"127.0.0.1:{route}")
    conf = tmp_path / "nats.conf"
    conf.write_text(text)
    return conf


def start_three(group: ProcessGroup, conf: Path, ports: list[tuple[int, int]]) -> None:
    """Three nats-servers of ``conf`` on their (client, route) ``ports``, accepting clients."""
    for i, (client, route) in enumerate(ports):
        argv = [*nats_server_argv(client, conf), "-p", str(client), "-m", "0"]
        argv += ["--name", f"kpng-nats-{i}", "--cluster", f"nats://127.0.0.1:{route}"]
        group.start(f"nats-{i}", argv)
    for client, _ in ports:
        wait_for_port("127.0.0.1", client)


@pytest.mark.integration
async def test_three_servers_from_the_rendered_config_carry_a_delta_across(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = "kpng"
    picked = free_ports(2 * len(HOSTS))
    ports = list(zip(picked[::2], picked[1::2], strict=True))
    conf = server_conf(tmp_path, ports)
    for role in ("watcher", "agent", "observer"):
        monkeypatch.setenv(f"KPNG_{role.upper()}_PASSWORD", f"{role}-pw")
        (tmp_path / f"{role}.password").write_text(f"{role}-pw\n")
    ca = str(tmp_path / "tls" / "ca.pem")

    def auth(role: str) -> BusAuth:
        return BusAuth(
            user=f"kpng-{role}", password_file=str(tmp_path / f"{role}.password"), tls_ca=ca
        )

    with ProcessGroup(tmp_path / "logs") as group:
        start_three(group, conf, ports)
        urls = [f"tls://127.0.0.1:{client}" for client, _ in ports]
        subjects = Subjects(prefix)
        agent = await connect(urls[2], retry_forever=False, auth=auth("agent"), prefix=prefix)
        watcher = await connect(urls[0], retry_forever=False, auth=auth("watcher"), prefix=prefix)
        got: list[bytes] = []
        try:
            await agent.subscribe(subjects.node_delta("n1"), lambda d, s, r: got.append(d))
            await agent.flush()

            for _ in range(100):  # the routes may still be forming: until one gets through
                await watcher.publish(subjects.node_delta("n1"), b"across the routes")
                await watcher.flush()
                await asyncio.sleep(0.1)
                if got:
                    break
            assert got and got[0] == b"across the routes"
        finally:
            await agent.close()
            await watcher.close()
        logs = "".join(c.log() for c in group.children.values())
        assert "TLS route" in logs or "Route connection created" in logs, logs[-2000:]
