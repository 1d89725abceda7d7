"""TokenReview through kubernetes-asyncio: the only Kubernetes importer of kpng-auth."""

from __future__ import annotations

from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kpng.runtime.kubeclient import KubeConfigError
from kpng.runtime.kubeclient import api_client as kube_api_client
from kpng_auth.decide import Review
from kpng_auth.reviewer import Reviewer, ReviewUnavailable


async def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client for ``kubeconfig`` or the in-cluster configuration; ReviewUnavailable."""
    try:
        return await kube_api_client(kubeconfig)
    except KubeConfigError as exc:
        raise ReviewUnavailable(str(exc)) from exc


def review_of(status: Any) -> Review:
    """Our :class:`Review` of a ``V1TokenReviewStatus``."""
    user = status.user if status is not None else None
    extra = {k: tuple(v or ()) for k, v in ((user.extra if user else None) or {}).items()}
    return Review(
        authenticated=bool(status is not None and status.authenticated),
        username=str((user.username if user else "") or ""),
        audiences=tuple((status.audiences if status is not None else None) or ()),
        extra=extra,
        error=str((status.error if status is not None else "") or ""),
    )


class KubeReviewer:
    """Creates a ``TokenReview`` per token (kpng-auth's RBAC: create tokenreviews)."""

    def __init__(self, api: client.ApiClient, timeout: float = 5.0) -> None:
        self._auth = client.AuthenticationV1Api(api)
        self.timeout = timeout

    async def review(self, token: str, audience: str) -> Review:
        body = client.V1TokenReview(
            spec=client.V1TokenReviewSpec(token=token, audiences=[audience])
        )
        try:
            result = await self._auth.create_token_review(
                body, _request_timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        except (TimeoutError, ApiException, aiohttp.ClientError, OSError) as exc:
            raise ReviewUnavailable(f"TokenReview: {exc!r}"[:300]) from exc
        return review_of(result.status)


def _conforms(reviewer: KubeReviewer) -> Reviewer:
    return reviewer
