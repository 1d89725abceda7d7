"""TokenReview through kubernetes-asyncio: the only Kubernetes importer of kpng-auth."""

from __future__ import annotations

from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from kpng_auth.decide import Review
from kpng_auth.reviewer import Reviewer, ReviewUnavailable


async def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client for ``kubeconfig`` or the in-cluster configuration; ReviewUnavailable."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
    except (ConfigException, OSError, ValueError) as exc:
        raise ReviewUnavailable(f"{kubeconfig or 'in-cluster configuration'}: {exc}") from exc
    return client.ApiClient(configuration)


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
