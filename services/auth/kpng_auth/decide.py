"""Who may connect to the bus and with which subjects: a pure decision per connection.

Input is what the adapters learned (a ``TokenReview`` result, a user name and password);
output a :class:`Grant` (the permissions, a name, an expiry) or a :class:`Denial` with a
short reason (a metric label) and a detail (for the log). No I/O, no clock: ``now`` is given.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from kpng.bus.identity import node_permissions
from kpng.bus.permissions import ROLES, Permissions, role_permissions
from kpng.bus.subjects import Subjects
from kpng.model import name_problem, shown_name

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
SA_PREFIX = "system:serviceaccount:"
REASONS = (
    "no-credentials",
    "token-invalid",
    "audience",
    "expired",
    "service-account",
    "node-name",
    "unknown-user",
    "password",
    "review-unavailable",
    "malformed-request",
)


@dataclass(frozen=True, slots=True)
class Review:
    """What the API server said of a token (``TokenReview`` status)."""

    authenticated: bool
    username: str = ""
    audiences: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class StaticUser:
    """A user of static credentials (no Kubernetes): a role and its password."""

    role: str
    password: str
    node_views: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    subjects: Subjects
    audience: str = "kpng"
    agent: str = "kube-system/kpng-agent"  # the agents' service account, namespace/name
    roles: Mapping[str, str] = field(default_factory=dict)  # other accounts: "ns/name" -> role
    users: Mapping[str, StaticUser] = field(default_factory=dict)
    max_lifetime: int = 3600  # seconds a granted user JWT lives at most


@dataclass(frozen=True, slots=True)
class Grant:
    name: str  # who, for logs and the JWT: "node/node-a1", "kpng/kpng-watcher", "user/x"
    permissions: Permissions
    expires: int  # unix seconds; the server closes the connection then
    node: str = ""


@dataclass(frozen=True, slots=True)
class Denial:
    reason: str  # one of REASONS
    detail: str


Decision = Grant | Denial


def decide_token(review: Review, token_expiry: int | None, now: float, policy: Policy) -> Decision:
    """A token's permissions, from its review: the agents' account gets its node's
    subjects (the node the token is bound to), an account in ``policy.roles`` its role's."""
    if not review.authenticated:
        error = review.error.lower()
        reason = (
            "audience"
            if "audience" in error
            else "expired"
            if "expired" in error
            else "token-invalid"
        )
        return Denial(reason, review.error or "the API server did not authenticate the token")
    if policy.audience not in review.audiences:
        return Denial(
            "audience", f"token audiences {list(review.audiences)} lack {policy.audience}"
        )
    if token_expiry is None or token_expiry <= now:
        return Denial("expired", "the token has no expiry or has expired")
    expires = min(int(now) + policy.max_lifetime, token_expiry)
    account = review.username.removeprefix(SA_PREFIX).replace(":", "/", 1)
    if not review.username.startswith(SA_PREFIX):
        return Denial("service-account", f"{review.username!r} is not a service account")
    if account == policy.agent:
        nodes = review.extra.get(NODE_NAME_EXTRA, ())
        if len(nodes) != 1:
            return Denial("node-name", f"{account}: the token is bound to no node ({nodes!r})")
        node = nodes[0]
        problem = name_problem(node)
        if problem:
            return Denial("node-name", f"{account}: node name {shown_name(node)}: {problem}")
        perms = node_permissions(policy.subjects, node)
        return Grant(f"node/{node}", perms, expires, node)
    role = policy.roles.get(account)
    if role is None:
        return Denial("service-account", f"{account} is neither the agents' nor given a role")
    return Grant(account, role_permissions(role, policy.subjects), expires)


def decide_password(user: str, password: str, now: float, policy: Policy) -> Decision:
    """Static credentials (where a component has no Kubernetes token)."""
    known = policy.users.get(user)
    if known is None:
        return Denial("unknown-user", f"no user {user!r}")
    if not hmac.compare_digest(known.password.encode(), password.encode()):
        return Denial("password", f"wrong password for {user!r}")
    perms = role_permissions(known.role, policy.subjects, known.node_views)
    return Grant(f"user/{user}", perms, int(now) + policy.max_lifetime)


def check_roles(roles: Mapping[str, str]) -> list[str]:
    """Problems in a role mapping ("ns/name" -> role), for a usage error."""
    found = []
    for account, role in roles.items():
        if role not in ROLES or role == "agent":
            found.append(f"{account}: role {role!r} (agents are the agent service account)")
        if account.count("/") != 1:
            found.append(f"{account}: expected namespace/name")
    return found
