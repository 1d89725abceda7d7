"""``authentication.k8s.io/v1`` TokenReview: service-account tokens the simulator issued.

Tests issue bound tokens (a service account, the node its pod runs on, audiences, an
expiry) and the simulator reviews them as the API server does: a valid one names the
service account and, in ``status.user.extra``, the node; an expired, unknown or
wrong-audience one is not authenticated, with the API server's kind of error. Tokens look
like JWTs (readable ``exp``, ``aud``) but only this table makes them valid.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from kpng_apisim.errors import ApiError, JsonObject

NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
DEFAULT_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    namespace: str
    service_account: str
    node: str
    audiences: tuple[str, ...]
    expires: float
    uid: str


def _b64(data: JsonObject) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class Tokens:
    """The tokens issued so far; ``clock`` gives unix seconds (tests may move it)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.issued: dict[str, IssuedToken] = {}
        self.reviews = 0

    def issue(
        self,
        service_account: str,
        node: str = "",
        *,
        audiences: tuple[str, ...] = ("kpng",),
        expires_in: float = 3600.0,
    ) -> str:
        """A token for ``namespace/name`` bound to a pod on ``node`` ("" for none)."""
        namespace, _, name = service_account.partition("/")
        now = self.clock()
        issued = IssuedToken(
            namespace, name, node, audiences, now + expires_in, secrets.token_hex(8)
        )
        claims: JsonObject = {
            "aud": list(audiences),
            "exp": int(issued.expires),
            "iat": int(now),
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": issued.uid},
                **({"node": {"name": node, "uid": "n-" + node}} if node else {}),
            },
        }
        header = {"alg": "RS256", "kid": "kpng-apisim"}
        token = f"{_b64(header)}.{_b64(claims)}.{secrets.token_urlsafe(32)}"
        self.issued[token] = issued
        return token

    def review(self, body: object) -> JsonObject:
        """The TokenReview ``body`` with its ``status`` filled in."""
        if not isinstance(body, dict) or body.get("kind", "TokenReview") != "TokenReview":
            raise ApiError(400, "expected a TokenReview")
        spec = body.get("spec") or {}
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise ApiError(422, "TokenReview.spec.token: Required value", kind="TokenReview")
        wanted = tuple(spec.get("audiences") or DEFAULT_AUDIENCES)
        self.reviews += 1
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": self._status(token, wanted),
        }

    def _status(self, token: str, wanted: tuple[str, ...]) -> JsonObject:
        issued = self.issued.get(token)
        if issued is None:
            return {"authenticated": False, "error": "[invalid bearer token, unknown token]"}
        if issued.expires <= self.clock():
            return {"authenticated": False, "error": "[invalid bearer token, token has expired]"}
        common = [a for a in wanted if a in issued.audiences]
        if not common:
            return {
                "authenticated": False,
                "error": f"[invalid bearer token, token audiences {list(issued.audiences)} "
                f"is invalid for the target audiences {list(wanted)}]",
            }
        extra = {"authentication.kubernetes.io/credential-id": [f"JTI={issued.uid}"]}
        if issued.node:
            extra[NODE_NAME_EXTRA] = [issued.node]
        return {
            "authenticated": True,
            "audiences": common,
            "user": {
                "username": f"system:serviceaccount:{issued.namespace}:{issued.service_account}",
                "uid": issued.uid,
                "groups": [
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{issued.namespace}",
                    "system:authenticated",
                ],
                "extra": extra,
            },
        }
