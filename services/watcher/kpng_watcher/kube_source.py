"""The Kubernetes API source: Services, EndpointSlices and Nodes, listed and watched.

One of kpng's few importers of kubernetes_asyncio (with the lease, kpng-auth's TokenReview and
the client loader, :mod:`kpng.runtime.kubeclient`, which builds the client from a kubeconfig or
the in-cluster configuration). One :class:`~kpng_watcher.kube_watch.Reflector` per resource
does the list/watch work; this module translates its responses and exceptions into ours, applies the
label selectors kube-proxy uses, and gates :class:`Synced` on all three initial lists.

A malformed object is skipped with a log line and counted in :class:`SourceStats`. A
MODIFIED event that makes a valid object malformed deletes it from the model rather than
keeping its last good version: the API server has moved on, so the last good version is
no longer what the user asked for (rules for ports or endpoints that were changed would
stay programmed, and nobody would notice); and a relist after ``410 Gone`` would drop the
object anyway, so deleting keeps the outcome independent of whether a relist happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kpng.model import LABEL_HEADLESS, LABEL_SERVICE_PROXY_NAME
from kpng.parse import KINDS, Parsed, parse_endpoint_slice, parse_node, parse_service
from kpng.runtime.kubeclient import api_client
from kpng.source import Replace, SourceEvent, SourceStats, Synced
from kpng_watcher.kube_watch import (
    ApiUnavailable,
    Gone,
    Page,
    RawObject,
    Reflector,
    WatchSettings,
    WatchStats,
)

log = logging.getLogger(__name__)

_NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError, json.JSONDecodeError)


def label_selector(service_proxy_name: str = "") -> str:
    """kube-proxy's selector for Services and EndpointSlices."""
    if service_proxy_name:
        return f"{LABEL_SERVICE_PROXY_NAME}={service_proxy_name},!{LABEL_HEADLESS}"
    return f"!{LABEL_SERVICE_PROXY_NAME},!{LABEL_HEADLESS}"


@dataclass(frozen=True, slots=True)
class KubeSettings:
    kubeconfig: str | None = None  # None: the in-cluster configuration
    service_proxy_name: str = ""
    watch: WatchSettings = field(default_factory=WatchSettings)
    queue_size: int = 10_000


class ListWatch:
    """A :class:`~kpng_watcher.kube_watch.ResourceApi` over one kubernetes_asyncio list call."""

    def __init__(self, what: str, call: Callable[..., Any], selector: str) -> None:
        self.what = what
        self.call = call
        self.selector = selector

    async def list_page(self, limit: int, continue_token: str) -> Page:
        kwargs: dict[str, Any] = {
            "limit": limit,
            "_request_timeout": aiohttp.ClientTimeout(total=120, connect=10),
        }
        if continue_token:
            kwargs["_continue"] = continue_token
        body = await self._request(kwargs, read=True)
        meta = body.get("metadata") or {}
        return Page(
            items=list(body.get("items") or []),
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_token=str(meta.get("continue") or ""),
        )

    async def watch(
        self, resource_version: str, timeout: int, idle_timeout: float
    ) -> AsyncGenerator[RawObject, None]:
        kwargs: dict[str, Any] = {
            "watch": True,
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": timeout,
            "_request_timeout": aiohttp.ClientTimeout(
                total=timeout + 30, connect=10, sock_read=idle_timeout
            ),
        }
        response = await self._request(kwargs, read=False)
        try:
            while True:
                try:
                    line = await response.content.readline()
                except _NETWORK_ERRORS as exc:
                    raise ApiUnavailable(f"{self.what} watch: {exc!r}") from exc
                if not line:
                    return
                if line.strip():
                    yield _json_object(line, f"{self.what} watch")
        finally:
            response.release()

    async def _request(self, kwargs: dict[str, Any], read: bool) -> Any:
        if self.selector:
            kwargs["label_selector"] = self.selector
        try:
            response = await self.call(_preload_content=False, **kwargs)
        except (ApiException, *_NETWORK_ERRORS) as exc:
            raise ApiUnavailable(f"{self.what}: {exc!r}") from exc
        if response.status != 200 or read:
            try:
                data = await response.read()
            except _NETWORK_ERRORS as exc:
                raise ApiUnavailable(f"{self.what}: {exc!r}") from exc
            finally:
                response.release()
            if response.status == 410:
                raise Gone(f"{self.what}: 410 Gone")
            if response.status != 200:
                raise ApiUnavailable(f"{self.what}: HTTP {response.status}: {data[:200]!r}")
            return _json_object(data, self.what)
        return response


def _json_object(data: bytes, what: str) -> Mapping[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiUnavailable(f"{what}: not JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise ApiUnavailable(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


class KubeSource:
    """A :class:`kpng.source.Source` over the Kubernetes API."""

    def __init__(self, settings: KubeSettings | None = None) -> None:
        self.settings = settings or KubeSettings()
        self.stats = SourceStats()
        self.watch_stats = WatchStats()
        self._api: client.ApiClient | None = None

    async def connect(self) -> client.ApiClient:
        """Load the client configuration (raises KubeConfigError); events() does it too."""
        if self._api is None:
            self._api = await api_client(self.settings.kubeconfig)
        return self._api

    async def close(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            await api.close()

    def reflectors(
        self, api: client.ApiClient, emit: Callable[[SourceEvent], Any]
    ) -> list[Reflector]:
        name = self.settings.service_proxy_name
        selector = label_selector(name)
        core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        resources: list[tuple[str, ListWatch, Callable[[RawObject], Parsed]]] = [
            (
                "Service",
                ListWatch("services", core.list_service_for_all_namespaces, selector),
                partial(parse_service, proxy_name=name),
            ),
            (
                "EndpointSlice",
                ListWatch(
                    "endpointslices", discovery.list_endpoint_slice_for_all_namespaces, selector
                ),
                partial(parse_endpoint_slice, proxy_name=name),
            ),
            ("Node", ListWatch("nodes", core.list_node, ""), parse_node),
        ]
        return [
            Reflector(kind, lw, parse, emit, self.stats, self.settings.watch, self.watch_stats)
            for kind, lw, parse in resources
        ]

    async def events(self) -> AsyncIterator[SourceEvent]:
        api = await self.connect()
        queue: asyncio.Queue[SourceEvent] = asyncio.Queue(self.settings.queue_size)
        tasks = [
            asyncio.create_task(r.run(), name=f"kube-{r.kind}")
            for r in self.reflectors(api, queue.put)
        ]
        log.info(
            "kube source: watching %s with selector %r",
            ", ".join(KINDS),
            label_selector(self.settings.service_proxy_name),
        )
        try:
            async for event in _gate(queue):
                yield event
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.close()


async def _gate(queue: asyncio.Queue[SourceEvent]) -> AsyncIterator[SourceEvent]:
    """The reflectors' events, with Synced once every kind has been listed."""
    listed: set[str] = set()
    synced = False
    while True:
        event = await queue.get()
        yield event
        if not synced and isinstance(event, Replace):
            listed |= event.kinds
            if listed >= set(KINDS):
                synced = True
                log.info("kube source: initial lists complete")
                yield Synced()
