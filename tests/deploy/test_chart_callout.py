"""The chart with per-node identity (kpngAuth): agents present projected tokens, kpng-auth
reviews them with only `create tokenreviews`, and the bundled NATS's callout configuration
works with kpng-auth against a real nats-server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.bus.auth import BusAuth
from kpng.bus.identity import node_inbox
from kpng.bus.nats import connect
from kpng.bus.subjects import Subjects
from kpng_auth.decide import NODE_NAME_EXTRA, Policy, Review, StaticUser
from kpng_auth.natsjwt import Signer, new_seed
from kpng_auth.pki import make_tls
from kpng_auth.respond import Responder
from kpng_auth.reviewer import FakeReviewer
from kpng_devrun.procs import ProcessGroup, free_port, nats_server_argv, wait_for_port
from tests.deploy.helm import HelmError, manifests, rendered, split_sources, template, values_args
from tests.integration.harness import until


def objects(files: dict[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in manifests(files)}


def container(obj: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return first


def test_agents_present_a_projected_token_of_their_own_account() -> None:
    objs = objects(rendered("kpng-auth"))
    agent = objs["DaemonSet", "kpng-agent"]
    spec = agent["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "kpng-agent"
    assert spec["automountServiceAccountToken"] is False  # only the kpng token is mounted
    assert objs["ServiceAccount", "kpng-agent"]["automountServiceAccountToken"] is False
    (projected,) = [v for v in spec["volumes"] if v["name"] == "kpng-token"]
    token = projected["projected"]["sources"][0]["serviceAccountToken"]
    assert token == {"audience": "kpng", "expirationSeconds": 3600, "path": "token"}
    env = {e["name"]: e.get("value") for e in container(agent)["env"]}
    assert env["KPNG_NATS_TOKEN_FILE"] == "/var/run/secrets/kpng/token"
    assert "KPNG_NATS_USER" not in env and "KPNG_NATS_PASSWORD_FILE" not in env
    assert "each gets its own node's subjects only" in rendered("kpng-auth")["NOTES.txt"]
    mounts = {m["name"]: m["mountPath"] for m in container(agent)["volumeMounts"]}
    assert mounts["kpng-token"] == "/var/run/secrets/kpng" and "nats-auth" not in mounts


def test_kpng_auth_may_only_create_tokenreviews_and_knows_the_agents_account() -> None:
    objs = objects(rendered("kpng-auth"))
    assert objs["ClusterRole", "kpng-auth"]["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    binding = objs["ClusterRoleBinding", "kpng-auth"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "kpng-auth", "namespace": "kube-system"}
    ]
    auth = objs["Deployment", "kpng-auth"]
    args = container(auth)["args"]
    assert args[args.index("--agent-service-account") + 1] == "kube-system/kpng-agent"
    assert args[args.index("--audience") + 1] == "kpng"
    assert auth["spec"]["template"]["spec"]["serviceAccountName"] == "kpng-auth"
    probe = container(auth)["livenessProbe"]["httpGet"]
    assert probe == {"path": "/metrics", "port": "metrics"}
    nats_env = {e["name"] for e in container(objs["Deployment", "kpng-nats"])["env"]}
    assert "KPNG_AUTH_PASSWORD" in nats_env


def test_kpng_auth_is_ready_once_it_answers_and_rolls_without_a_gap() -> None:
    """/readyz on the metrics port: a rolling update waits for a new replica to answer the
    callout before it stops an old one; liveness stays on /metrics (a NATS outage is no
    reason to restart)."""
    auth = objects(rendered("kpng-auth"))["Deployment", "kpng-auth"]
    c = container(auth)
    assert c["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": "metrics"},
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 2,
    }
    assert c["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    (port,) = [p for p in c["ports"] if p["name"] == "metrics"]
    address = c["args"][c["args"].index("--metrics-bind-address") + 1]
    assert address == f"0.0.0.0:{port['containerPort']}"  # the probe's port is the listener
    assert auth["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    tuned = {"kpngAuth": {"metricsPort": 9200, "readinessProbe": {"periodSeconds": 2}}}
    text = template(*values_args("kpng-auth"), overrides=tuned)
    c = container(objects({"all.yaml": text})["Deployment", "kpng-auth"])
    assert c["readinessProbe"]["periodSeconds"] == 2
    assert c["readinessProbe"]["failureThreshold"] == 2  # the rest kept
    assert {"name": "metrics", "containerPort": 9200, "protocol": "TCP"} in c["ports"]


def test_without_an_issuer_the_chart_says_what_to_do() -> None:
    with pytest.raises(HelmError, match="kpng-auth --issuer-seed seed --init-issuer"):
        template(*values_args("kpng-auth"), overrides={"kpngAuth": {"enabled": True, "issuer": ""}})
    defaults = objects(rendered("defaults"))
    assert ("Deployment", "kpng-auth") not in defaults  # off unless asked


@pytest.mark.integration
async def test_the_charts_callout_config_works_with_kpng_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = Signer(new_seed())
    files = split_sources(
        template(*values_args("kpng-auth"), overrides={"kpngAuth": {"issuer": signer.public}})
    )
    (cm,) = [o for o in manifests(files) if o["metadata"]["name"] == "kpng-nats-config"]
    tls = make_tls(tmp_path / "tls", ["127.0.0.1"])
    text = yaml.safe_load(yaml.safe_dump(cm))["data"]["nats.conf"]
    text = text.replace("/etc/nats/tls/tls.crt", str(tls.cert))
    text = text.replace("/etc/nats/tls/tls.key", str(tls.key))
    (tmp_path / "nats.conf").write_text(text)
    for role in ("watcher", "agent", "observer", "auth"):
        monkeypatch.setenv(f"KPNG_{role.upper()}_PASSWORD", f"{role}-secret")
        (tmp_path / f"{role}.pw").write_text(f"{role}-secret\n")
    # a JWT-shaped token with an expiry, as kubelet's (the fake reviewer vouches for it)
    token = Signer(new_seed()).encode({"exp": int(time.time()) + 600})
    (tmp_path / "token").write_text(token + "\n")
    port = free_port()
    with ProcessGroup(tmp_path / "logs") as group:
        group.start(
            "nats-server",
            [*nats_server_argv(port, tmp_path / "nats.conf"), "-p", str(port), "-m", "0"],
        )
        wait_for_port("127.0.0.1", port)
        url, ca = f"tls://127.0.0.1:{port}", str(tls.ca)
        s = Subjects("kpng")
        auth_bus = await connect(
            url,
            retry_forever=False,
            auth=BusAuth(user="kpng-auth", password_file=str(tmp_path / "auth.pw"), tls_ca=ca),
        )
        review = Review(
            True,
            "system:serviceaccount:kube-system:kpng-agent",
            ("kpng",),
            {NODE_NAME_EXTRA: ("n1",)},
        )
        policy = Policy(
            s,
            agent="kube-system/kpng-agent",
            users={"kpng-watcher": StaticUser("watcher", "watcher-secret")},
        )
        responder = Responder(auth_bus, FakeReviewer({token: review}), policy, signer, "KPNG")
        task = asyncio.create_task(responder.run())
        try:
            await until(lambda: auth_bus.connected)
            await asyncio.sleep(0.2)
            watcher = await connect(
                url,
                retry_forever=False,
                auth=BusAuth(
                    user="kpng-watcher", password_file=str(tmp_path / "watcher.pw"), tls_ca=ca
                ),
            )
            agent = await connect(
                url,
                retry_forever=False,
                auth=BusAuth(token_file=str(tmp_path / "token"), tls_ca=ca),
                inbox_prefix=node_inbox(s, "n1"),
            )
            got: list[str] = []
            await agent.subscribe(s.node_delta("n1"), lambda d, subj, r: got.append(subj))
            await agent.flush()
            await until(lambda: agent.connected and watcher.connected, 15)
            await agent.publish(s.node_status("n2"), b"{}")
            await agent.flush()
            await until(lambda: agent.permission_violations == 1, 15)
            for _ in range(100):  # until the delta is in (a busy machine may be slow)
                await watcher.publish(s.node_delta("n1"), b"d")
                await watcher.flush()
                await asyncio.sleep(0.1)
                if got:
                    break
            assert got and set(got) == {s.node_delta("n1")}
            await agent.close()
            await watcher.close()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await auth_bus.close()
