"""kpng-auth: nats-server's auth-callout responder, per-node identity for agents.

    kpng-auth --issuer-seed /etc/kpng-auth/issuer.nk --init-issuer   # prints the public key
    kpng-auth --nats tls://nats:4222 --nats-user kpng-auth --nats-password-file ... \\
        --issuer-seed /etc/kpng-auth/issuer.nk \\
        --agent-service-account kube-system/kpng-agent \\
        --role kube-system/kpng-watcher=watcher --role kube-system/kpng-observer=observer \\
        --users-file users.yaml    # optional static users: {name: {role, password_file}}

An agent presents its projected service-account token (audience ``kpng``); a TokenReview
says which node it is bound to; the agent gets that node's subjects only, until the token
expires (at most ``--max-lifetime``). See docs/security.md.

``--metrics-bind-address`` serves ``/metrics`` and ``/readyz``: 200 once answering the
callout, 503 (and why) while loading, connecting or reconnecting to NATS.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from kpng.bus.flags import add_bus_arguments, bus_auth
from kpng.bus.nats import connect
from kpng.bus.permissions import ROLES
from kpng.bus.subjects import Subjects
from kpng.runtime.config import parse_args
from kpng.runtime.metrics import serve
from kpng.runtime.process import add_common_arguments, host_port, run, setup_logging
from kpng.runtime.procmetrics import register_process_metrics
from kpng_auth.calloutconf import BUS_ACCOUNT
from kpng_auth.decide import Policy, StaticUser, check_roles
from kpng_auth.kube import KubeReviewer, api_client
from kpng_auth.natsjwt import ACCOUNT, JwtError, Signer, new_seed
from kpng_auth.readiness import CalloutReadiness, readyz
from kpng_auth.respond import AuthMetrics, Responder
from kpng_auth.reviewer import ReviewUnavailable

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kpng-auth", description=__doc__.split("\n")[0])
    add_common_arguments(p)
    add_bus_arguments(p)
    p.add_argument("--issuer-seed", required=True, metavar="FILE", help="account nkey seed")
    p.add_argument(
        "--init-issuer",
        action="store_true",
        help="create --issuer-seed if absent (mode 0600), print its public key and exit",
    )
    p.add_argument("--account", default=BUS_ACCOUNT, help="account of granted users")
    p.add_argument("--audience", default="kpng", help="the tokens' audience (%(default)s)")
    p.add_argument(
        "--agent-service-account",
        default="kube-system/kpng-agent",
        help="namespace/name of the agents' service account (default: %(default)s)",
    )
    p.add_argument(
        "--role",
        action="append",
        default=[],
        metavar="NS/NAME=ROLE",
        help="a service account and its role (watcher, observer, consumer); repeatable",
    )
    p.add_argument("--users-file", metavar="FILE", help="static users (YAML)")
    p.add_argument("--max-lifetime", type=int, default=3600, help="seconds (%(default)s)")
    p.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster)")
    p.add_argument("--concurrency", type=int, default=64, help="requests answered at once")
    p.add_argument(
        "--metrics-bind-address", type=host_port, help="host:port for /metrics and /readyz"
    )
    return p


def init_issuer(path: Path) -> str:
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new_seed(ACCOUNT) + b"\n")
    return Signer(path.read_bytes()).public


def read_users(path: str) -> dict[str, StaticUser]:
    """``{name: {role, password_file, node_views}}``; ValueError names the field."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of user name to {{role, password_file}}")
    users = {}
    for name, spec in raw.items():
        if not isinstance(spec, dict) or spec.get("role") not in ROLES or spec["role"] == "agent":
            raise ValueError(f"{path}.{name}.role: expected watcher, observer or consumer")
        try:
            password = Path(str(spec["password_file"])).read_text().strip()
        except (KeyError, OSError) as exc:
            raise ValueError(f"{path}.{name}.password_file: {exc}") from None
        users[str(name)] = StaticUser(spec["role"], password, bool(spec.get("node_views")))
    return users


def policy_of(args: argparse.Namespace, p: argparse.ArgumentParser) -> Policy:
    roles = dict(r.split("=", 1) for r in args.role if "=" in r)
    problems = check_roles(roles) + [f"--role {r}: NS/NAME=ROLE" for r in args.role if "=" not in r]
    if args.agent_service_account.count("/") != 1:
        problems.append("--agent-service-account: expected namespace/name")
    if problems:
        p.error("; ".join(problems))
    try:
        users = read_users(args.users_file) if args.users_file else {}
    except (ValueError, OSError, yaml.YAMLError) as exc:
        p.error(str(exc))
    return Policy(
        Subjects(args.prefix),
        audience=args.audience,
        agent=args.agent_service_account,
        roles=roles,
        users=users,
        max_lifetime=args.max_lifetime,
    )


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = parse_args(p, argv)
    setup_logging(args.log_level, args.logging_format)
    readiness = CalloutReadiness()
    try:
        if args.init_issuer:
            print(init_issuer(Path(args.issuer_seed)))
            return 0
        signer = Signer(Path(args.issuer_seed).read_bytes())
    except (OSError, JwtError) as exc:
        print(f"kpng-auth: --issuer-seed {args.issuer_seed}: {exc}", file=sys.stderr)
        return 2
    auth = bus_auth(args, p)
    policy = policy_of(args, p)
    readiness.loaded()
    registry = CollectorRegistry()
    metrics = AuthMetrics(registry)
    register_process_metrics(registry)
    if args.metrics_bind_address:
        host, port = args.metrics_bind_address
        serve(registry, host, port, pages={"/readyz": lambda: readyz(readiness.check())})

    async def serve_callout() -> None:
        try:
            api = await api_client(args.kubeconfig)
        except ReviewUnavailable as exc:
            log.error("no Kubernetes API (tokens will be refused): %s", exc)
            raise SystemExit(2) from None
        async with (
            api,
            await connect(args.nats, prefix=args.prefix, name="kpng-auth", auth=auth) as bus,
        ):
            responder = Responder(
                bus,
                KubeReviewer(api),
                policy,
                signer,
                args.account,
                metrics=metrics,
                concurrency=args.concurrency,
                readiness=readiness,
            )
            log.info("kpng-auth issuer %s, agents %s", signer.public, policy.agent)
            await responder.run()

    return run(serve_callout)


if __name__ == "__main__":
    sys.exit(main())
