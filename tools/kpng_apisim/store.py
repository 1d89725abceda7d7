"""The object store: one global resourceVersion, an event history and watch fan-out.

Like etcd behind the API server: every write gets the next resourceVersion, writes are
kept in a history that watches replay from, and compaction forgets old history so that
clients asking for it get 410 Gone. Objects are plain Kubernetes JSON dicts.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from kpng_apisim import errors
from kpng_apisim.defaults import (
    AllocatorConfig,
    ServiceAllocator,
    default_namespace,
    default_service,
    validate_endpoint_slice,
)
from kpng_apisim.errors import JsonObject
from kpng_apisim.resources import ALL_RESOURCES, ResourceType, by_plural

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""(namespace, name); the namespace is "" for cluster-scoped objects."""

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change; ``obj`` is the object after it, ``prev`` before it."""

    rv: int
    type: str
    resource: str
    key: Key
    obj: JsonObject
    prev: JsonObject | None


@dataclass(eq=False, slots=True)
class Subscription:
    """An open watch: replayed events first, then live ones; ``None`` ends it."""

    resource: str
    namespace: str | None
    start_rv: int
    initial: tuple[Event, ...]
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)

    def wants(self, event: Event) -> bool:
        return event.resource == self.resource and (
            self.namespace is None or event.key[0] == self.namespace
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec_part(obj: JsonObject) -> JsonObject:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    """In-memory objects keyed by (resource, namespace, name) with watch support."""

    def __init__(
        self,
        *,
        allocator: AllocatorConfig | None = None,
        clock: Callable[[], datetime] = _now,
        max_history: int = 100_000,
    ) -> None:
        self._clock = clock
        self._allocator_config = allocator or AllocatorConfig()
        self._max_history = max_history
        self._subs: set[Subscription] = set()
        self._rv = 0
        self.reset()

    def reset(self) -> None:
        """Forget every object and all history (the RV keeps growing, as after a restore)."""
        self._objects: dict[str, dict[Key, JsonObject]] = {r.plural: {} for r in ALL_RESOURCES}
        self._history: deque[Event] = deque()
        # Even a client that saw the last write must relist: the objects just dropped
        # never produce DELETED events, so resuming a watch from any old RV would miss them.
        self._compacted = self._rv + 1
        self.allocator = ServiceAllocator(self._allocator_config)
        for name in ("default", "kube-system", "kube-public"):
            self.create("namespaces", {"metadata": {"name": name}})

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_rv(self) -> int:
        """Snapshots and watches from a resourceVersion older than this get 410."""
        return self._compacted

    # --- reads -------------------------------------------------------------------------

    def get(self, resource: str, name: str, namespace: str | None = None) -> JsonObject:
        rt = by_plural(resource)
        obj = self._objects[resource].get(self._key(rt, name, namespace))
        if obj is None:
            raise errors.not_found(resource, name, rt.group)
        return copy.deepcopy(obj)

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        at_rv: int | None = None,
        copy_objects: bool = True,
    ) -> tuple[int, list[JsonObject]]:
        """Objects sorted by key, at ``at_rv`` (a past snapshot) or now; and that RV."""
        objects = self._objects[resource] if at_rv is None else self._state_at(resource, at_rv)
        items = [
            obj for key, obj in sorted(objects.items()) if namespace is None or key[0] == namespace
        ]
        rv = self._rv if at_rv is None else at_rv
        return rv, copy.deepcopy(items) if copy_objects else items

    def _state_at(self, resource: str, rv: int) -> dict[Key, JsonObject]:
        if rv < self._compacted:
            raise errors.expired(f"too old resource version: {rv} ({self._compacted})")
        state = dict(self._objects[resource])
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.resource != resource:
                continue
            if event.prev is None:
                state.pop(event.key, None)
            else:
                state[event.key] = event.prev
        return state

    # --- writes ------------------------------------------------------------------------

    def create(self, resource: str, obj: JsonObject, namespace: str | None = None) -> JsonObject:
        """Create ``obj``; 409 if it exists, 404 if its namespace does not."""
        rt = by_plural(resource)
        new = copy.deepcopy(obj)
        meta = self._prepare_meta(rt, new, namespace)
        key = (meta.get("namespace", ""), meta["name"])
        if key in self._objects[resource]:
            raise errors.already_exists(resource, meta["name"], rt.group)
        self._admit(rt, new, None)
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=_timestamp(self._clock),
            generation=1,
        )
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(transient, None)
        return copy.deepcopy(self._commit(ADDED, rt, key, new, None))

    def update(
        self,
        resource: str,
        obj: JsonObject,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        keep_status: bool = False,
    ) -> JsonObject:
        """Replace an object; 409 when ``metadata.resourceVersion`` is set and stale.

        ``subresource="status"`` only takes the status; ``keep_status`` ignores it.
        """
        rt = by_plural(resource)
        new = copy.deepcopy(obj)
        meta = self._prepare_meta(rt, new, namespace)
        key = (meta.get("namespace", ""), meta["name"])
        old = self._objects[resource].get(key)
        if old is None:
            raise errors.not_found(resource, meta["name"], rt.group)
        if meta.get("resourceVersion") and str(meta["resourceVersion"]) != str(
            old["metadata"]["resourceVersion"]
        ):
            raise errors.conflict(resource, meta["name"])
        if subresource == "status":
            new = {**copy.deepcopy(old), "status": new.get("status", {})}
        elif keep_status and "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        self._admit(rt, new, old)
        old_meta = old["metadata"]
        new_meta = new["metadata"]
        for kept in ("uid", "creationTimestamp", "generation"):
            if kept in old_meta:
                new_meta[kept] = old_meta[kept]
        if _spec_part(new) != _spec_part(old):
            new_meta["generation"] = int(old_meta.get("generation", 1)) + 1
        return copy.deepcopy(self._commit(MODIFIED, rt, key, new, old))

    def upsert(self, resource: str, obj: JsonObject, namespace: str | None = None) -> JsonObject:
        """Create or unconditionally replace (a test convenience)."""
        rt = by_plural(resource)
        meta = obj.get("metadata", {})
        key = self._key(rt, meta.get("name", ""), namespace or meta.get("namespace"))
        if key in self._objects[resource]:
            unconditional = {**obj, "metadata": {**meta, "resourceVersion": None}}
            return self.update(resource, unconditional, namespace)
        return self.create(resource, obj, namespace)

    def delete(
        self,
        resource: str,
        name: str,
        namespace: str | None = None,
        *,
        precondition_rv: str | None = None,
        precondition_uid: str | None = None,
    ) -> JsonObject:
        """Delete now (finalizers are not simulated); return the object as deleted."""
        rt = by_plural(resource)
        key = self._key(rt, name, namespace)
        old = self._objects[resource].get(key)
        if old is None:
            raise errors.not_found(resource, name, rt.group)
        meta = old["metadata"]
        if (precondition_rv and precondition_rv != meta["resourceVersion"]) or (
            precondition_uid and precondition_uid != meta["uid"]
        ):
            raise errors.conflict(resource, name)
        if resource == "namespaces":
            self._delete_namespace_contents(name)
        if resource == "services":
            self.allocator.release(old)
        return copy.deepcopy(self._commit(DELETED, rt, key, copy.deepcopy(old), old))

    def _delete_namespace_contents(self, namespace: str) -> None:
        for rt in ALL_RESOURCES:
            if rt.namespaced:
                for ns, name in [k for k in self._objects[rt.plural] if k[0] == namespace]:
                    self.delete(rt.plural, name, ns)

    def _key(self, rt: ResourceType, name: str, namespace: str | None) -> Key:
        return ((namespace or "default") if rt.namespaced else "", name)

    def _prepare_meta(self, rt: ResourceType, obj: JsonObject, namespace: str | None) -> JsonObject:
        if not isinstance(obj, dict):
            raise errors.bad_request("the object must be a JSON object")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if not meta.get("name") or not isinstance(meta["name"], str):
            raise errors.invalid(rt.kind, "", "metadata.name: Required value: name is required")
        obj["kind"], obj["apiVersion"] = rt.kind, rt.group_version
        if not rt.namespaced:
            meta.pop("namespace", None)
            return meta
        if namespace and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace "
                "sent on the request"
            )
        meta["namespace"] = namespace or meta.get("namespace") or "default"
        if ("", meta["namespace"]) not in self._objects["namespaces"]:
            raise errors.not_found("namespaces", meta["namespace"])
        return meta

    def _admit(self, rt: ResourceType, obj: JsonObject, old: JsonObject | None) -> None:
        if rt.plural == "services":
            default_service(obj, old, self.allocator)
        elif rt.plural == "namespaces":
            default_namespace(obj)
        elif rt.plural == "endpointslices":
            validate_endpoint_slice(obj)

    def _commit(
        self, kind: str, rt: ResourceType, key: Key, obj: JsonObject, prev: JsonObject | None
    ) -> JsonObject:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if kind == DELETED:
            self._objects[rt.plural].pop(key, None)
        else:
            self._objects[rt.plural][key] = obj
        event = Event(self._rv, kind, rt.plural, key, obj, prev)
        self._history.append(event)
        while len(self._history) > self._max_history:
            self._compacted = self._history.popleft().rv
        for sub in self._subs:
            if sub.wants(event):
                sub.queue.put_nowait(event)
        log.debug("commit", extra={"rv": self._rv, "type": kind, "resource": rt.plural, "key": key})
        return obj

    # --- watches and history -----------------------------------------------------------

    def subscribe(self, resource: str, namespace: str | None, since_rv: int | None) -> Subscription:
        """Open a watch. ``since_rv`` None: synthetic ADDED for the current state first."""
        if since_rv is None:
            _, items = self.list(resource, namespace, copy_objects=False)
            initial = tuple(self._synthetic_added(resource, items))
        else:
            if since_rv < self._compacted:
                raise errors.expired(f"too old resource version: {since_rv} ({self._compacted})")
            initial = tuple(
                e
                for e in self._history
                if e.rv > since_rv
                and e.resource == resource
                and (namespace is None or e.key[0] == namespace)
            )
        sub = Subscription(resource, namespace, self._rv, initial)
        self._subs.add(sub)
        return sub

    def _synthetic_added(self, resource: str, items: Iterable[JsonObject]) -> Iterable[Event]:
        for obj in items:
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            yield Event(int(meta["resourceVersion"]), ADDED, resource, key, obj, None)

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def watch_count(self) -> int:
        return len(self._subs)

    def cut_watches(self) -> int:
        """End every open watch stream; return how many there were."""
        subs = list(self._subs)
        for sub in subs:
            sub.queue.put_nowait(None)
        self._subs.clear()
        log.info("watches cut", extra={"count": len(subs)})
        return len(subs)

    def compact(self, rv: int | None = None) -> int:
        """Forget history up to ``rv`` (default: now); older RVs then get 410."""
        target = self._rv if rv is None else min(rv, self._rv)
        while self._history and self._history[0].rv <= target:
            self._history.popleft()
        self._compacted = max(self._compacted, target)
        log.info("compacted", extra={"rv": self._compacted})
        return self._compacted
