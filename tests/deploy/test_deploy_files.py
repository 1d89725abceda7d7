"""The deployment files (Dockerfile, .dockerignore, docker-compose.yml, the Helm chart) checked
against the programs they run: no Docker engine is needed; the chart is rendered by a real helm
(tests/deploy/helm.py), and tests/deploy/test_chart.py checks it further.

The anti-drift core: every flag the files pass to kpng-watcher, kpng-agent or kpng-observer is
in that program's ``--help``, every choice is one it offers, and the whole command line parses
with the program's own argument parser.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.helm import HelmError, manifests, rendered, template, values_args
from tests.deploy.programs import program_parser
from tests.layout.tree import SOURCE_ROOTS

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("kpng-watcher", "kpng-agent", "kpng-observer")
NATS_SERVERS = ("nats-1", "nats-2", "nats-3")
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
TEST_TOOLS = ("tools/kpng_apisim", "tools/kpng_scale", "tools/kpng_bench")

# matrix files (tests/deploy/values/) that exercise the branches these tests look at
SCENARIOS = ("defaults", "bundled-nats", "dump")


# ---------------------------------------------------------------------------------------------
# the programs


@cache
def all_help() -> dict[tuple[str, ...], str]:
    """Every program's --help (and `kpng-agent cleanup --help`), run in parallel."""
    bindir = Path(sys.executable).parent
    commands = [(p,) for p in PROGRAMS] + [("kpng-agent", "cleanup")]
    procs = {
        c: subprocess.Popen(
            [str(bindir / c[0]), *c[1:], "--help"], stdout=subprocess.PIPE, text=True
        )
        for c in commands
    }
    out = {}
    for c, proc in procs.items():
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, c
        out[c] = stdout
    return out


def help_text(program: str, *sub: str) -> str:
    return all_help()[(program, *sub)]


@cache
def options(program: str) -> dict[str, frozenset[str] | None]:
    """{--flag: its choices, or None} from the program's --help."""
    out: dict[str, frozenset[str] | None] = {}
    for m in re.finditer(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?: \{([^}]*)\})?", help_text(program)):
        choices = frozenset(m.group(2).split(",")) if m.group(2) else None
        if out.get(m.group(1)) is None:
            out[m.group(1)] = choices
    return out


def check_command(argv: list[str], where: str) -> None:
    """argv is `<program> [args]`: flags, choices and the whole line are valid for it."""
    program, *args = argv
    assert program in PROGRAMS, f"{where}: runs {program!r}, not a kpng program"
    known = options(program)
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        flag, eq, value = arg.partition("=")
        assert flag in known, f"{where}: {program} has no {flag} (see {program} --help)"
        choices = known[flag]
        if choices is not None:
            given = value if eq else args[i + 1]
            assert given in choices, f"{where}: {flag} {given!r} not in {sorted(choices)}"
    # the program's own parser: types (CIDRs, HOST:PORT, positive numbers) and required flags
    concrete = [a.replace("$(NODE_NAME)", "node-a1") for a in args]
    parser = program_parser(program.removeprefix("kpng-"))
    try:
        parser.parse_args(concrete)
    except SystemExit as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"{where}: {program} rejects {shlex.join(concrete)}") from exc


def test_help_parsing_finds_flags_and_choices() -> None:
    agent = options("kpng-agent")
    assert agent["--backend"] == {"dump", "nftables"}
    assert agent["--conntrack-cleanup"] == {"auto", "on", "off"}
    assert agent["--node"] is None
    assert "--service-proxy-name" in options("kpng-watcher")
    assert "--token-file" in options("kpng-observer")
    with pytest.raises(AssertionError, match="no --frobnicate"):
        check_command(["kpng-agent", "--node", "n", "--frobnicate"], "test")
    with pytest.raises(AssertionError, match="not in"):
        check_command(["kpng-agent", "--node", "n", "--backend", "iptables"], "test")


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore


def dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_dockerfile_base_packages_and_user() -> None:
    ins = dockerfile_instructions()
    args = dict(rest.split("=", 1) for word, rest in ins if word == "ARG" and "=" in rest)
    images = [rest.split()[0] for word, rest in ins if word == "FROM"]
    bases = [args.get(i.strip("${}"), i) for i in images]
    # pinned: a Python patch release and a Debian release, not a moving tag
    assert len(set(bases)) == 1, bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", bases[0]), bases
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    install = re.search(r"apt-get install ([^&]*)", runs)
    assert install is not None
    assert {"nftables", "iproute2", "conntrack"} <= set(install.group(1).split())
    assert "pip install" in runs
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the image must not run as root"


def test_dockerfile_commands_are_valid() -> None:
    ins = dockerfile_instructions()
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    for program in PROGRAMS:
        assert f"{program} --help" in runs, f"the build does not smoke-test {program}"
    for word, rest in ins:
        if word in ("CMD", "ENTRYPOINT") and rest.startswith("["):
            argv = yaml.safe_load(rest)
            if argv[-1] == "--help":
                assert argv[0] in PROGRAMS
            else:
                check_command(argv, f"Dockerfile {word}")


def dockerignore_patterns() -> list[tuple[bool, str]]:
    out = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        out.append((negate, line.lstrip("!").strip("/")))
    return out


def _match(pattern: str, path: str) -> bool:
    if pattern.startswith("**/"):
        rest = pattern[3:]
        parts = path.split("/")
        return any(fnmatch.fnmatchcase("/".join(parts[i:]), rest) for i in range(len(parts)))
    return fnmatch.fnmatchcase(path, pattern) and pattern.count("/") == path.count("/")


def ignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, pattern in dockerignore_patterns():
        if any(_match(pattern, p) for p in prefixes):
            result = not negate
    return result


def test_dockerignore_matcher() -> None:
    assert ignored("tests/core/test_model.py")
    assert not ignored("libs/kpng/model.py")
    assert ignored("libs/kpng/__pycache__/model.cpython-311.pyc")


def test_dockerignore_keeps_the_product_and_drops_tests_and_tools() -> None:
    for rel in ("pyproject.toml", "README.md", "LICENSE", "constraints.txt"):  # the wheel's inputs
        assert not ignored(rel), rel
    for top in ("libs", "services"):
        files = [p for p in (ROOT / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files
        for p in files:
            rel = p.relative_to(ROOT).as_posix()
            assert not ignored(rel), f"{rel} must be in the image's build context"
    for rel in ("tests", *TEST_TOOLS):
        files = [p for p in (ROOT / rel).rglob("*") if p.is_file()]
        assert files, rel
        for p in files:
            assert ignored(p.relative_to(ROOT).as_posix()), f"{p} would ship in the image"
    for rel in (".venv/bin/python", ".git/HEAD", "run/dumps/node-a1.json"):
        assert ignored(rel), rel


def test_product_code_does_not_import_the_tools() -> None:
    """The image builds without tools/: nothing under libs/ or services/ may import them."""
    tools = {p.name for p in (ROOT / "tools").iterdir() if (p / "__init__.py").exists()}
    assert set(Path(t).name for t in TEST_TOOLS) <= tools
    for top in ("libs", "services"):
        for path in (ROOT / top).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                for name in names:
                    assert name.split(".")[0] not in tools, f"{path} imports {name}"


def test_package_discovery_covers_the_image_packages() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    where = re.search(r"\[tool\.setuptools\.packages\.find\]\s*where\s*=\s*\[([^\]]*)\]", pyproject)
    assert where is not None
    dirs = set(re.findall(r'"([^"]+)"', where.group(1)))
    copied = set(SOURCE_ROOTS) - {"tools"}  # the image has the product, not the dev tools
    assert copied <= dirs
    assert dirs - copied <= {"tools"}, "a new package root must be added to the Dockerfile"
    for d in copied:
        assert re.search(rf"^COPY {d.split('/')[0]} ", dockerfile(), re.M), d


# ---------------------------------------------------------------------------------------------
# docker-compose.yml


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def example_nodes() -> set[str]:
    docs = yaml.safe_load_all((ROOT / "examples" / "cluster.yaml").read_text())
    return {d["metadata"]["name"] for d in docs if d and d.get("kind") == "Node"}


def kpng_services() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, svc in compose()["services"].items():
        if svc.get("command") and svc["command"][0] in PROGRAMS:
            yield name, svc


def test_compose_commands_are_valid() -> None:
    programs = set()
    for name, svc in kpng_services():
        check_command(svc["command"], f"docker-compose.yml {name}")
        programs.add(svc["command"][0])
        assert svc["build"]["context"] == "."
        for server in NATS_SERVERS:
            assert svc["depends_on"][server]["condition"] == "service_healthy"
    assert programs == set(PROGRAMS)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_compose_topology() -> None:
    services = compose()["services"]
    names = set()
    for server in NATS_SERVERS:
        assert services[server]["image"] == "nats:2.10-alpine"
        names.add(flag(services[server]["command"], "--name"))
    assert len(names) == 3
    agents = {
        flag(s["command"], "--node"): s
        for _, s in kpng_services()
        if s["command"][0] == "kpng-agent"
    }
    assert set(agents) == example_nodes() == {"node-a1", "node-a2", "node-b1"}
    volumes = set(compose()["volumes"])
    for node, svc in agents.items():
        assert flag(svc["command"], "--backend") == "dump"
        dump = flag(svc["command"], "--dump-file")
        mounts = [v.split(":") for v in svc["volumes"]]
        assert any(src in volumes and dump.startswith(dst + "/") for src, dst, *_ in mounts), node
        assert node in dump
    urls = {flag(s["command"], "--nats") for _, s in kpng_services()}
    assert urls == {",".join(f"tls://{server}:4222" for server in NATS_SERVERS)}
    settings = yaml.safe_load((ROOT / "deploy" / "compose" / "bus.yaml").read_text())
    assert settings["cluster"]["routes"] == [f"{server}:6222" for server in NATS_SERVERS]
    assert set(NATS_SERVERS) <= set(settings["tls"]["generate"])


def test_compose_connects_every_program_with_its_role_over_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security on by default: each program's flags and environment give it its role's
    credentials and TLS (no --nats-insecure); nats-server runs the generated roles."""
    import argparse

    from kpng.bus.flags import add_bus_arguments, bus_auth
    from kpng.runtime.config import apply_settings

    services = compose()["services"]
    settings = yaml.safe_load((ROOT / "deploy" / "compose" / "bus.yaml").read_text())
    for server in NATS_SERVERS:
        assert "-c" in services[server]["command"]
        assert services[server]["depends_on"]["bus-config"]["condition"] == (
            "service_completed_successfully"
        )
    for name, svc in kpng_services():
        assert "--nats-insecure" not in svc["command"], name
        for key in list(os.environ):
            if key.startswith("KPNG_"):
                monkeypatch.delenv(key)
        for key, value in svc["environment"].items():
            monkeypatch.setenv(key, value)
        p = argparse.ArgumentParser()
        add_bus_arguments(p)
        apply_settings(p, {}, "", os.environ)  # as every program parses: KPNG_* variables
        args, _ = p.parse_known_args(svc["command"][1:])
        auth = bus_auth(args, p)
        role = {"kpng-watcher": "watcher", "kpng-agent": "agent", "kpng-observer": "observer"}
        if role[svc["command"][0]] == "agent":  # each agent its node's own user
            node_name = flag(svc["command"], "--node")
            assert node_name in settings["nodes"], name
            assert auth.user == f"node-{node_name}", name
            assert auth.password_file == f"/var/lib/kpng/bus/nodes/{node_name}.password"
        else:
            assert auth.user == role[svc["command"][0]], name
            assert settings["users"][auth.user]["role"] == auth.user
            assert auth.password_file == f"/var/lib/kpng/bus/users/{auth.user}.password"
        assert auth.tls_ca == "/var/lib/kpng/bus/tls/ca.pem"
        assert any(v.startswith("bus:/var/lib/kpng/bus") for v in svc["volumes"]), name


def test_compose_watcher_reads_the_example_read_only() -> None:
    (watcher,) = [s for _, s in kpng_services() if s["command"][0] == "kpng-watcher"]
    source = flag(watcher["command"], "--source")
    assert source.startswith("file:")
    path = source.removeprefix("file:")
    for mount in watcher["volumes"]:
        host, container, mode = mount.split(":")
        if path.startswith(container + "/"):
            assert mode == "ro"
            assert (ROOT / host / path.removeprefix(container + "/")).resolve() == (
                ROOT / "examples" / "cluster.yaml"
            )
            break
    else:
        raise AssertionError(f"{path} is not mounted into the watcher")


def test_compose_observer_published_on_loopback_with_readyz() -> None:
    (observer,) = [s for _, s in kpng_services() if s["command"][0] == "kpng-observer"]
    assert observer["ports"] == ["127.0.0.1:8080:8080"]
    assert flag(observer["command"], "--listen").endswith(":8080")
    assert "/readyz" in " ".join(observer["healthcheck"]["test"])


# ---------------------------------------------------------------------------------------------
# the Helm chart


@cache
def objects(scenario: str) -> list[dict[str, Any]]:
    return manifests(rendered(scenario))


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def find(scenario: str, kind: str, component: str) -> dict[str, Any]:
    (obj,) = [
        o
        for o in objects(scenario)
        if o["kind"] == kind and o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return obj


def test_chart_refuses_missing_values() -> None:
    with pytest.raises(HelmError, match="healthz"):
        template(*values_args("defaults"), overrides={"agent": {"healthz": None}})


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_renders_to_valid_objects(scenario: str) -> None:
    objs = objects(scenario)
    assert objs
    names = set()
    for o in objs:
        assert o["apiVersion"] and o["kind"], o
        meta = o["metadata"]
        key = (o["kind"], meta["name"])
        assert key not in names, key
        names.add(key)
        labels = meta["labels"]
        for label in ("name", "instance", "version", "managed-by", "part-of", "component"):
            assert f"app.kubernetes.io/{label}" in labels, (key, label)
        if o["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert meta["namespace"] == "kube-system", key
        if o["kind"] in WORKLOADS:
            selector = o["spec"]["selector"]["matchLabels"]
            template_labels = o["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= template_labels.items(), key
        if o["kind"] == "Service":
            pods = [
                w
                for w in objs
                if w["kind"] in WORKLOADS
                and o["spec"]["selector"].items()
                <= w["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert len(pods) == 1, key
            port_names = {p["name"] for c in containers(pods[0]) for p in c.get("ports", [])}
            for port in o["spec"]["ports"]:
                assert port["targetPort"] in port_names, key


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_container_args_are_valid(scenario: str) -> None:
    seen = set()
    for o in objects(scenario):
        for c in containers(o):
            argv = list(c.get("command", [])) + list(c.get("args", []))
            if argv and argv[0] in PROGRAMS:
                check_command(argv, f"{scenario}: {o['kind']} {o['metadata']['name']}")
                seen.add(argv[0])
                image = c["image"]
                assert image.startswith("kpng:"), image
    expected = set(PROGRAMS) if scenario != "dump" else set(PROGRAMS) - {"kpng-observer"}
    assert seen == expected


def test_chart_nats_url_and_prefix_are_shared() -> None:
    for scenario in SCENARIOS:
        urls, prefixes = set(), set()
        for o in objects(scenario):
            for c in containers(o):
                argv = c.get("args", [])
                if c.get("command", [""])[0] in PROGRAMS:
                    urls.add(flag(argv, "--nats"))
                    prefixes.add(flag(argv, "--prefix"))
        assert len(urls) == 1 and len(prefixes) == 1, scenario
    (url,) = {
        flag(c["args"], "--nats")
        for o in objects("bundled-nats")
        for c in containers(o)
        if c.get("command")
    }
    nats_svc = find("bundled-nats", "Service", "nats")
    (port,) = nats_svc["spec"]["ports"]
    # TLS on by default, and the port a value
    assert url == f"tls://{nats_svc['metadata']['name']}.kube-system.svc:4333"
    assert port["port"] == 4333
    assert not [
        o
        for o in objects("defaults")
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == "nats"
    ]


def test_cluster_role_grants_exactly_what_the_watcher_watches() -> None:
    source = (ROOT / "services/watcher/kpng_watcher/kube_source.py").read_text()
    watched = set(re.findall(r'ListWatch\(\s*"(\w+)"', source))
    assert watched == {"services", "endpointslices", "nodes"}
    role = find("defaults", "ClusterRole", "watcher")
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    assert grants == {
        ("", "services"): {"get", "list", "watch"},
        ("", "nodes"): {"get", "list", "watch"},
        ("discovery.k8s.io", "endpointslices"): {"get", "list", "watch"},
    }
    binding = find("defaults", "ClusterRoleBinding", "watcher")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    (subject,) = binding["subjects"]
    watcher = find("defaults", "Deployment", "watcher")
    assert subject["name"] == watcher["spec"]["template"]["spec"]["serviceAccountName"]
    assert subject["namespace"] == "kube-system"
    sa = find("defaults", "ServiceAccount", "watcher")
    assert sa["metadata"]["name"] == subject["name"]
    assert not [o for o in objects("dump") if o["kind"] == "ServiceAccount"]
    other = find("dump", "Deployment", "watcher")
    assert other["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


def test_only_the_watcher_gets_api_credentials() -> None:
    for o in objects("defaults"):
        if o["kind"] in WORKLOADS:
            spec = o["spec"]["template"]["spec"]
            component = o["metadata"]["labels"]["app.kubernetes.io/component"]
            if component != "watcher":
                assert spec["automountServiceAccountToken"] is False, component


def test_watchers_elect_a_leader_by_default_with_kube_source() -> None:
    watcher = find("defaults", "Deployment", "watcher")
    assert watcher["spec"]["replicas"] == 2
    assert watcher["spec"]["strategy"]["type"] == "RollingUpdate"
    (c,) = containers(watcher)
    assert flag(c["args"], "--source") == "kube"
    assert "--leader-elect" in c["args"]
    assert flag(c["args"], "--leader-elect-lease-duration") == "15"
    assert flag(c["args"], "--leader-elect-renew-deadline") == "10"
    assert flag(c["args"], "--leader-elect-retry-period") == "2"
    assert flag(c["args"], "--leader-elect-resource-name") == "kpng-watcher"
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["KPNG_NATS_USER"]["value"] == "kpng-watcher"  # and the bus credentials
    assert "--service-proxy-name" not in c["args"]
    assert c["securityContext"]["runAsNonRoot"] is True
    # the Lease: get/create/update in the release namespace, bound to the watcher's account
    role = find("defaults", "Role", "watcher")
    assert role["metadata"]["namespace"] == "kube-system"
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "create", "update"],
        }
    ]
    binding = find("defaults", "RoleBinding", "watcher")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert (
        binding["subjects"][0]["name"] == watcher["spec"]["template"]["spec"]["serviceAccountName"]
    )
    (c,) = containers(find("bundled-nats", "Deployment", "watcher"))
    assert flag(c["args"], "--service-proxy-name") == "kpng"
    env = {e["name"]: e["value"] for e in c["env"] if e["name"].startswith("KUBERNETES_")}
    assert env == {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}


def test_agent_daemonset() -> None:
    ds = find("defaults", "DaemonSet", "agent")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in spec["tolerations"]
    (c,) = containers(ds)
    args = c["args"]
    assert flag(args, "--node") == "$(NODE_NAME)"
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert flag(args, "--backend") == "nftables"
    sc = c["securityContext"]
    assert sc["privileged"] is False
    assert sc["runAsUser"] == 0
    assert set(sc["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    # the probes hit the healthz server the args start, on the node (hostNetwork)
    host, port = flag(args, "--healthz-bind-address").rsplit(":", 1)
    assert host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["healthz"] == int(port)
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "healthz"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}


def test_agent_dump_backend_writes_to_a_volume() -> None:
    (c,) = containers(find("dump", "DaemonSet", "agent"))
    dump = flag(c["args"], "--dump-file")
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert any(dump.startswith(m + "/") for m in mounts)
    assert "priorityClassName" not in find("dump", "DaemonSet", "agent")["spec"]["template"]["spec"]


def test_observer_uses_a_token_and_its_probes() -> None:
    obs = find("defaults", "Deployment", "observer")
    (c,) = containers(obs)
    assert "--insecure" not in c["args"]
    token_file = flag(c["args"], "--token-file")
    mount = next(m for m in c["volumeMounts"] if m["name"] == "token")
    assert token_file == f"{mount['mountPath']}/token"
    volume = next(v for v in obs["spec"]["template"]["spec"]["volumes"] if v["name"] == "token")
    # GitOps names the Secret (the chart renders nothing random: test_chart.py)
    assert volume["secret"]["secretName"] == "kpng-observer-token-mine"
    assert volume["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert not [o for o in objects("defaults") if o["kind"] == "Secret"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert find("defaults", "Service", "observer")["spec"]["type"] == "ClusterIP"
    # an existing Secret: the chart makes none
    obs = find("bundled-nats", "Deployment", "observer")
    volume = next(v for v in obs["spec"]["template"]["spec"]["volumes"] if v["name"] == "token")
    assert volume["secret"]["secretName"] == "mine"
    assert not [o for o in objects("bundled-nats") if o["kind"] == "Secret"]


def test_notes_explain_cleanup_with_a_valid_command() -> None:
    notes = rendered("defaults")["NOTES.txt"]
    line = next(x for x in notes.splitlines() if "kpng-agent cleanup" in x)
    argv = shlex.split(line.split(" -- ", 1)[1])
    assert argv[:2] == ["kpng-agent", "cleanup"]
    cleanup_flags = set(re.findall(r"--[a-z-]+", help_text("kpng-agent", "cleanup")))
    for arg in argv[2:]:
        if arg.startswith("--"):
            assert arg in cleanup_flags, arg
    assert flag(argv, "--table-name") == "kpng"


def test_docs_cover_deployment() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    for needle in (
        "helm install",
        "docker compose",
        "--service-proxy-name",
        "kpng-agent cleanup",
        "existingSecret",
        "kpng-nats-config",
        "priorityClassQuota.create=true",
        "helm test",
        "ServiceMonitor",
    ):
        assert needle in text, needle
