"""A kubernetes-asyncio API client from a kubeconfig file or the in-cluster configuration:
the one way kpng's programs (the watcher's Kubernetes source, kpng-auth's TokenReview) load
it, so that both read the same files and say the same thing when they cannot."""

from __future__ import annotations

from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException


class KubeConfigError(Exception):
    """The kubeconfig (or the in-cluster configuration) cannot be used; says which and why."""


async def api_client(kubeconfig: str | None) -> client.ApiClient:
    """A client for ``kubeconfig``, or for the in-cluster configuration when it is None."""
    configuration = client.Configuration()
    try:
        if kubeconfig is None:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            await config.load_kube_config(
                config_file=kubeconfig, client_configuration=configuration
            )
    except (ConfigException, OSError, ValueError) as exc:
        where = kubeconfig or "the in-cluster configuration"
        raise KubeConfigError(f"cannot use {where}: {exc}") from exc
    return client.ApiClient(configuration)
