"""kpng-nats-config: nats-server's configuration for kpng's roles, from one small file.

    prefix: kpng                 # the bus subject prefix (default kpng)
    listen: 0.0.0.0:4222
    tls:                         # omit for no TLS (then every kpng program needs --nats-insecure)
      generate: [nats, 127.0.0.1]  # a throwaway CA and server certificate for these names
      # or: {cert: server.pem, key: server-key.pem, ca: ca.pem}
    users:
      watcher: {role: watcher}
      agent: {role: agent}
      observer: {role: observer}
      dashboards: {role: consumer, node_views: true}
      exporter: {role: consumer, also: {subscribe: [metrics.>]}}  # beyond the role
    nodes: [node-a1, node-a2]    # per-node agents: user node-NAME, only that node's subjects
    callout:                     # optional: per-node identity from tokens through kpng-auth
      issuer: A...               # kpng-auth --init-issuer prints it
    cluster:                     # optional: one file for every server of a NATS cluster
      name: kpng
      listen: 0.0.0.0:6222
      routes: [nats-1:6222, nats-2:6222, nats-3:6222]  # every server, itself included

writes ``nats.conf``, one password file per user (``users/NAME.password``, mode 0600, kept
across runs) and, with ``generate``, the certificates under ``tls/``. Each kpng program
then takes ``--nats-user NAME --nats-password-file users/NAME.password`` and
``--nats-tls-ca tls/ca.pem``. Each of ``nodes`` gets a user ``node-NAME`` (password in
``nodes/NAME.password``) whose permissions are that node's subjects only
(:mod:`kpng.bus.identity`), the same scope kpng-auth grants from a Kubernetes token; its
agent must then use its own reply inbox, which ``kpng-agent`` always does.

With ``callout``, every connection but kpng-auth's goes through kpng-auth (NATS auth
callout): its password is ``users/kpng-auth.password`` and ``kpng-auth-users.yaml`` lists
the users above for its ``--users-file`` (their passwords are checked by kpng-auth); agents
present Kubernetes tokens instead (``nodes`` and agent users do not apply).

With ``cluster``, the routes between servers authenticate with a generated password
(``cluster.password``) and, with ``tls``, use the same certificate (so ``generate`` must
name every server's host).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kpng.bus.natsconf import ServerTls, User, render
from kpng.bus.permissions import NONE, ROLES, Permissions
from kpng.bus.subjects import Subjects
from kpng.model import name_problem
from kpng.runtime.config import add_version_argument
from kpng_auth.calloutconf import CalloutConf, render_callout
from kpng_auth.natsjwt import ACCOUNT, JwtError, public_key_bytes
from kpng_auth.pki import make_tls

NAME = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class UserSpec:
    name: str
    role: str
    node_views: bool = False
    also: Permissions = NONE  # subjects beyond the role's


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    name: str
    listen: str
    routes: tuple[str, ...]  # host:port of every server


@dataclass(frozen=True, slots=True)
class Settings:
    prefix: str
    listen: str
    users: tuple[UserSpec, ...]
    tls_generate: tuple[str, ...] = ()
    tls_files: ServerTls | None = None
    max_payload: int | None = None
    extra: str = ""  # raw nats-server settings appended (e.g. write_deadline)
    cluster: ClusterSpec | None = None
    nodes: tuple[str, ...] = ()  # agents with a per-node identity
    callout_issuer: str = ""  # kpng-auth's account public key: auth callout


def node_user(node: str) -> str:
    return f"node-{node}"


def parse_settings(raw: Any, where: str = "settings") -> Settings:
    """The settings file's content, checked; SettingsError names the field."""
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: expected a mapping")
    unknown = set(raw) - {
        "prefix", "listen", "tls", "users", "max_payload", "cluster", "nodes", "callout"
    }  # fmt: skip
    if unknown:
        raise SettingsError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    prefix = str(raw.get("prefix", "kpng"))
    try:
        Subjects(prefix)
    except ValueError as exc:
        raise SettingsError(f"{where}.prefix: {exc}") from None
    listen = str(raw.get("listen", "127.0.0.1:4222"))
    users_raw = raw.get("users")
    if not isinstance(users_raw, dict) or not users_raw:
        raise SettingsError(f"{where}.users: expected a mapping of user name to {{role: ...}}")
    users = []
    for name, spec in users_raw.items():
        field = f"{where}.users.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise SettingsError(f"{field}: a user name is lower-case letters, digits, - and _")
        if not isinstance(spec, dict) or spec.get("role") not in ROLES:
            raise SettingsError(f"{field}.role: expected one of {', '.join(ROLES)}")
        node_views = spec.get("node_views", False)
        if not isinstance(node_views, bool):
            raise SettingsError(f"{field}.node_views: expected true or false")
        users.append(UserSpec(name, spec["role"], node_views, _also(spec.get("also"), field)))
    tls_raw = raw.get("tls")
    generate: tuple[str, ...] = ()
    files = None
    if isinstance(tls_raw, dict) and "generate" in tls_raw:
        hosts = tls_raw["generate"]
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
            raise SettingsError(f"{where}.tls.generate: expected a list of host names or IPs")
        generate = tuple(hosts)
    elif isinstance(tls_raw, dict):
        try:
            files = ServerTls(str(tls_raw["cert"]), str(tls_raw["key"]), str(tls_raw.get("ca", "")))
        except KeyError as exc:
            raise SettingsError(f"{where}.tls.{exc.args[0]}: required") from None
    elif tls_raw is not None:
        raise SettingsError(f"{where}.tls: expected {{generate: [...]}} or {{cert, key, ca}}")
    max_payload = raw.get("max_payload")
    if max_payload is not None and (not isinstance(max_payload, int) or max_payload < 1024):
        raise SettingsError(f"{where}.max_payload: expected bytes, at least 1024")
    cluster = _cluster(raw.get("cluster"), f"{where}.cluster")
    nodes = _nodes(raw.get("nodes", []), f"{where}.nodes")
    issuer = _callout(raw.get("callout"), f"{where}.callout")
    if issuer and (nodes or any(u.role == "agent" for u in users)):
        raise SettingsError(
            f"{where}.callout: agents present tokens to kpng-auth; drop nodes and agent users"
        )
    if issuer and any(u.also != NONE for u in users):
        raise SettingsError(f"{where}.callout: kpng-auth grants roles only; drop also")
    return Settings(
        prefix,
        listen,
        tuple(users),
        generate,
        files,
        max_payload,
        cluster=cluster,
        nodes=nodes,
        callout_issuer=issuer,
    )


def _callout(raw: Any, field: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, dict) or set(raw) != {"issuer"}:
        raise SettingsError(f"{field}: expected {{issuer: A...}} (kpng-auth --init-issuer)")
    try:
        public_key_bytes(str(raw["issuer"]), ACCOUNT)
    except JwtError as exc:
        raise SettingsError(f"{field}.issuer: {exc}") from None
    return str(raw["issuer"])


def _nodes(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(n, str) for n in raw):
        raise SettingsError(f"{field}: expected a list of node names")
    for node in raw:
        problem = name_problem(node)
        if problem:
            raise SettingsError(f"{field}: {node!r}: {problem}")
    return tuple(dict.fromkeys(raw))


def _cluster(raw: Any, field: str) -> ClusterSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"name", "listen", "routes"}:
        raise SettingsError(f"{field}: expected {{name, listen, routes}}")
    name = str(raw.get("name", "kpng"))
    if not NAME.match(name):
        raise SettingsError(f"{field}.name: lower-case letters, digits, - and _")
    routes = raw.get("routes")
    if (
        not isinstance(routes, list)
        or not routes
        or not all(isinstance(r, str) and re.fullmatch(r"[\w.-]+:\d+", r) for r in routes)
    ):
        raise SettingsError(f"{field}.routes: expected a list of host:port, one per server")
    return ClusterSpec(name, str(raw.get("listen", "0.0.0.0:6222")), tuple(routes))


def render_cluster(cluster: ClusterSpec, password: str, tls: ServerTls | None) -> str:
    """nats-server's ``cluster`` block: routes to every server, a shared route password."""
    routes = ", ".join(f'"nats-route://route:{password}@{r}"' for r in cluster.routes)
    lines = [
        "cluster {",
        f'  name: "{cluster.name}"',
        f'  listen: "{cluster.listen}"',
        "  authorization {",
        '    user: "route"',
        f'    password: "{password}"',
        "    timeout: 5",
        "  }",
        f"  routes: [{routes}]",
    ]
    if tls is not None:
        lines += ["  tls {", f'    cert_file: "{tls.cert}"', f'    key_file: "{tls.key}"']
        if tls.ca:
            lines.append(f'    ca_file: "{tls.ca}"')
        lines += ["    timeout: 5", "  }"]
    return "\n".join([*lines, "}", ""])


def _also(raw: Any, field: str) -> Permissions:
    """A user's subjects beyond its role: {publish: [...], subscribe: [...]}."""
    if raw is None:
        return NONE
    if not isinstance(raw, dict) or set(raw) - {"publish", "subscribe"}:
        raise SettingsError(f"{field}.also: expected {{publish: [...], subscribe: [...]}}")
    lists = []
    for key in ("publish", "subscribe"):
        subjects = raw.get(key, [])
        if not isinstance(subjects, list) or not all(
            isinstance(s, str) and s and " " not in s for s in subjects
        ):
            raise SettingsError(f"{field}.also.{key}: expected a list of subjects")
        lists.append(tuple(subjects))
    return Permissions(lists[0], lists[1])


def _password(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def generate(settings: Settings, out: Path) -> Path:
    """Write nats.conf, the password files and (if asked) the certificates under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    users = [
        User(u.name, u.role, _password(out / "users" / f"{u.name}.password"), u.node_views, u.also)
        for u in settings.users
    ] + [
        User(node_user(n), "agent", _password(out / "nodes" / f"{n}.password"), node=n)
        for n in settings.nodes
    ]
    tls = settings.tls_files
    if settings.tls_generate:
        files = make_tls(
            out / "tls", list(settings.tls_generate), routes=settings.cluster is not None
        )
        tls = ServerTls(
            str(files.cert.resolve()), str(files.key.resolve()), str(files.ca.resolve())
        )
    subjects = Subjects(settings.prefix)
    callout = ""
    if settings.callout_issuer:
        password = _password(out / "users" / "kpng-auth.password")
        callout = render_callout(CalloutConf(settings.callout_issuer, "kpng-auth", password))
        _write_auth_users(settings, out)
    text = render(
        settings.listen, users, subjects, tls, settings.max_payload, settings.extra, callout
    )
    if settings.cluster is not None:
        text += render_cluster(settings.cluster, _password(out / "cluster.password"), tls)
    conf = out / "nats.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the passwords
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return conf


def _write_auth_users(settings: Settings, out: Path) -> None:
    """kpng-auth's --users-file: the users, checked by kpng-auth through the callout."""
    users = {
        u.name: {
            "role": u.role,
            "password_file": str((out / "users" / f"{u.name}.password").resolve()),
            "node_views": u.node_views,
        }
        for u in settings.users
    }
    (out / "kpng-auth-users.yaml").write_text(yaml.safe_dump(users, sort_keys=True))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="kpng-nats-config",
        description="Write nats-server's configuration for kpng's roles from a settings file.",
    )
    p.add_argument("settings", type=Path, help="the settings file (YAML)")
    p.add_argument("--out", type=Path, required=True, help="directory to write into")
    add_version_argument(p)
    args = p.parse_args(argv)
    try:
        raw = yaml.safe_load(args.settings.read_text())
        settings = parse_settings(raw, str(args.settings))
        conf = generate(settings, args.out)
    except (OSError, yaml.YAMLError, SettingsError) as exc:
        print(f"kpng-nats-config: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {conf}")
    for user in settings.users:
        print(
            f"  {user.name} ({user.role}): --nats-user {user.name} --nats-password-file "
            f"{args.out / 'users' / (user.name + '.password')}"
        )
    if settings.callout_issuer:
        print(
            f"  kpng-auth: --nats-user kpng-auth --nats-password-file "
            f"{args.out / 'users' / 'kpng-auth.password'} --users-file "
            f"{args.out / 'kpng-auth-users.yaml'}"
        )
    for node in settings.nodes:
        print(
            f"  agent of {node}: --nats-user {node_user(node)} --nats-password-file "
            f"{args.out / 'nodes' / (node + '.password')}"
        )
    if settings.tls_generate:
        print(f"  every program: --nats-tls-ca {args.out / 'tls' / 'ca.pem'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
