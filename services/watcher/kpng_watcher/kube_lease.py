"""The Lease adapter: a :class:`~kpng_watcher.leader.LeaseLock` on coordination.k8s.io/v1."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kpng_watcher.election import LeaseRecord
from kpng_watcher.leader import LeaseError


def _micro_time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seconds(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def record_of(lease: Any) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(
        holder=(spec.holder_identity or "") if spec else "",
        lease_duration=(spec.lease_duration_seconds or 0) if spec else 0,
        acquire_time=_seconds(spec.acquire_time) if spec else 0.0,
        renew_time=_seconds(spec.renew_time) if spec else 0.0,
        transitions=(spec.lease_transitions or 0) if spec else 0,
        resource_version=lease.metadata.resource_version or "",
    )


def body_of(name: str, namespace: str, record: LeaseRecord) -> client.V1Lease:
    return client.V1Lease(
        api_version="coordination.k8s.io/v1",
        kind="Lease",
        metadata=client.V1ObjectMeta(
            name=name, namespace=namespace, resource_version=record.resource_version or None
        ),
        spec=client.V1LeaseSpec(
            holder_identity=record.holder,
            lease_duration_seconds=record.lease_duration,
            acquire_time=_micro_time(record.acquire_time),
            renew_time=_micro_time(record.renew_time),
            lease_transitions=record.transitions,
        ),
    )


class KubeLeaseLock:
    """``namespace``/``name`` through ``api`` (a connected kubernetes-asyncio ApiClient)."""

    def __init__(
        self, api: client.ApiClient, name: str, namespace: str, timeout: float = 5.0
    ) -> None:
        self.name = name
        self.namespace = namespace
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._coord = client.CoordinationV1Api(api)

    async def get(self) -> LeaseRecord | None:
        try:
            lease = await self._coord.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error("read", exc) from exc
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise LeaseError(f"lease {self.namespace}/{self.name}: read: {exc}") from exc
        return record_of(lease)

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        body = body_of(self.name, self.namespace, record)
        return await self._write(
            "create",
            self._coord.create_namespaced_lease(
                self.namespace, body, _request_timeout=self._timeout
            ),
        )

    async def update(self, record: LeaseRecord) -> LeaseRecord | None:
        body = body_of(self.name, self.namespace, record)
        call = self._coord.replace_namespaced_lease(
            self.name, self.namespace, body, _request_timeout=self._timeout
        )
        return await self._write("update", call)

    async def _write(self, what: str, call: Any) -> LeaseRecord | None:
        try:
            return record_of(await call)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise self._error(what, exc) from exc
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            raise LeaseError(f"lease {self.namespace}/{self.name}: {what}: {exc}") from exc

    def _error(self, what: str, exc: ApiException) -> LeaseError:
        return LeaseError(f"lease {self.namespace}/{self.name}: {what}: {exc.status} {exc.reason}")
