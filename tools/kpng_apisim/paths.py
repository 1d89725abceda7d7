"""Request paths and list parameters, parsed into values."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from kpng_apisim.errors import ApiError
from kpng_apisim.resources import ResourceType, lookup, resources_of
from kpng_apisim.selectors import Selector, parse_selector


@dataclass(frozen=True, slots=True)
class Target:
    """What a resource URL points at: a collection, an object or an object's subresource."""

    rt: ResourceType
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    legacy_watch: bool = False


def parse_resource_path(group: str, version: str, segments: list[str]) -> Target:
    """Parse what follows ``/api/v1`` or ``/apis/<group>/<version>``."""
    legacy_watch = bool(segments) and segments[0] == "watch"
    parts = segments[1:] if legacy_watch else segments
    served = {rt.plural for rt in resources_of(group, version)}
    if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] in served:
        rt = lookup(group, version, parts[2])
        if not rt.namespaced or len(parts) > 5:
            raise ApiError(404, "the server could not find the requested resource")
        name = parts[3] if len(parts) > 3 else None
        sub = parts[4] if len(parts) > 4 else None
        return _checked(Target(rt, parts[1], name, sub, legacy_watch))
    if not parts or len(parts) > 3:
        raise ApiError(404, "the server could not find the requested resource")
    rt = lookup(group, version, parts[0])
    if rt.namespaced and len(parts) > 1:
        raise ApiError(404, "the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    return _checked(Target(rt, None, name, sub, legacy_watch))


def _checked(target: Target) -> Target:
    if target.subresource is not None and target.subresource not in target.rt.subresources:
        raise ApiError(
            404, f"the server could not find the requested resource ({target.subresource})"
        )
    return target


@dataclass(frozen=True, slots=True)
class ListParams:
    """The query parameters of a list or watch."""

    selector: Selector = field(default_factory=Selector)
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""
    watch: bool = False
    allow_bookmarks: bool = False
    timeout_seconds: float | None = None
    send_initial_events: bool = False


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _number(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"invalid {name}: {raw!r}") from None


def parse_list_params(query: Mapping[str, str]) -> ListParams:
    timeout = _number(query, "timeoutSeconds")
    return ListParams(
        selector=parse_selector(query.get("labelSelector"), query.get("fieldSelector")),
        limit=max(0, _number(query, "limit") or 0),
        continue_token=query.get("continue", ""),
        resource_version=query.get("resourceVersion", ""),
        resource_version_match=query.get("resourceVersionMatch", ""),
        watch=_flag(query.get("watch")),
        allow_bookmarks=_flag(query.get("allowWatchBookmarks")),
        timeout_seconds=float(timeout) if timeout is not None and timeout > 0 else None,
        send_initial_events=_flag(query.get("sendInitialEvents")),
    )


def parse_rv(raw: str) -> int:
    try:
        rv = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid resource version: {raw!r}") from None
    if rv < 0:
        raise ApiError(400, f"invalid resource version: {raw!r}")
    return rv


@dataclass(frozen=True, slots=True)
class ContinueToken:
    """Where a paginated list resumes: the snapshot RV and the last key returned."""

    rv: int
    start: tuple[str, str]

    def encode(self) -> str:
        body = {"v": "meta.k8s.io/v1", "rv": self.rv, "start": list(self.start)}
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()

    @staticmethod
    def decode(token: str) -> ContinueToken:
        try:
            body = json.loads(base64.urlsafe_b64decode(token.encode()))
            ns, name = body["start"]
            return ContinueToken(int(body["rv"]), (str(ns), str(name)))
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise ApiError(400, f"continue key is not valid: {token!r}") from None
