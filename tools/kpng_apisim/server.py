"""The HTTP face of the simulator: an ASGI app speaking the Kubernetes REST protocol."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from kpng_apisim import discovery, openapi
from kpng_apisim.errors import ApiError, JsonObject
from kpng_apisim.lists import list_page
from kpng_apisim.patches import APPLY, apply_patch
from kpng_apisim.paths import ListParams, Target, parse_list_params, parse_resource_path, parse_rv
from kpng_apisim.store import Store
from kpng_apisim.tables import table, wants_table
from kpng_apisim.tokens import Tokens
from kpng_apisim.watch import WatchOptions, error_line, stream_events

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServerConfig:
    bookmark_interval: float = 1.0


def json_response(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body).encode(), status_code=status, media_type="application/json")


class ApiApp:
    """Routes requests to the store; every failure becomes a Kubernetes ``Status``."""

    def __init__(self, store: Store, config: ServerConfig | None = None) -> None:
        self.store = store
        self.config = config or ServerConfig()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.server_address = "127.0.0.1:0"
        self.tokens = Tokens()  # TokenReview

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._dispatch(request)
        except ApiError as err:
            response = json_response(err.status(), err.code)
        except Exception as exc:
            log.exception("request failed", extra={"path": request.url.path})
            response = json_response(ApiError(500, f"internal error: {exc!r}").status(), 500)
        await response(scope, receive, send)

    async def _dispatch(self, request: Request) -> Response:
        parts = [p for p in request.url.path.split("/") if p]
        if parts and parts[0] in ("healthz", "readyz", "livez"):
            return Response(b"ok", media_type="text/plain")
        if parts[:1] in (["api"], ["apis"]) and len(parts) <= 3 - (parts[0] == "api"):
            return self._discovery(parts)
        if parts == ["apis", "authentication.k8s.io", "v1", "tokenreviews"]:
            if request.method != "POST":
                raise ApiError(405, "tokenreviews: only create (POST)")
            self.requests["create", "tokenreviews"] += 1
            return json_response(self.tokens.review(await _body(request)), 201)
        if parts[:2] == ["api", "v1"]:
            return await self._resource(request, "", "v1", parts[2:])
        if parts[:1] == ["apis"] and len(parts) >= 3:
            return await self._resource(request, parts[1], parts[2], parts[3:])
        if parts == ["version"]:
            return json_response(discovery.version())
        if parts == ["openapi", "v3"]:
            return json_response(openapi.openapi_root())
        if parts[:2] == ["openapi", "v3"]:
            return json_response(openapi.openapi_group_version("/".join(parts[2:])))
        raise ApiError(404, "the server could not find the requested resource")

    def _discovery(self, parts: list[str]) -> Response:
        self.requests["discovery", "/".join(parts)] += 1
        if parts == ["api"]:
            return json_response(discovery.api_versions(self.server_address))
        if parts == ["api", "v1"]:
            return json_response(discovery.api_resource_list("", "v1"))
        if parts == ["apis"]:
            return json_response(discovery.api_group_list())
        if len(parts) == 2:
            return json_response(discovery.api_group(parts[1]))
        return json_response(discovery.api_resource_list(parts[1], parts[2]))

    async def _resource(
        self, request: Request, group: str, version: str, rest: list[str]
    ) -> Response:
        if not rest:
            self.requests["discovery", f"{group}/{version}"] += 1
            return json_response(discovery.api_resource_list(group, version))
        target = parse_resource_path(group, version, rest)
        method = request.method
        if target.name is None:
            return await self._collection(request, method, target)
        if target.legacy_watch:
            raise ApiError(405, "watch of a single object: use a fieldSelector")
        if method == "GET":
            return self._get(target, wants_table(request.headers.get("accept", "")))
        if method == "PUT":
            return await self._update(request, target)
        if method == "PATCH":
            return await self._patch(request, target)
        if method == "DELETE" and target.subresource is None:
            return await self._delete(request, target)
        raise ApiError(405, f"{method} is not supported on {request.url.path}")

    async def _collection(self, request: Request, method: str, target: Target) -> Response:
        params = parse_list_params(request.query_params)
        if method == "GET" and (params.watch or target.legacy_watch):
            return self._watch(target, params)
        if method == "GET":
            self.requests["list", target.rt.plural] += 1
            page = list_page(self.store, target, params)
            if wants_table(request.headers.get("accept", "")):
                return json_response(table(target.rt, page["items"], page["metadata"]))
            return json_response(page)
        if method == "POST":
            return await self._create(request, target)
        if method == "DELETE":
            return self._delete_collection(target, params)
        raise ApiError(405, f"{method} is not supported on {request.url.path}")

    def _watch(self, target: Target, params: ListParams) -> Response:
        self.requests["watch", target.rt.plural] += 1
        rv = params.resource_version
        since = None if rv in ("", "0") or params.send_initial_events else parse_rv(rv)
        opts = WatchOptions(
            selector=params.selector,
            bookmarks=params.allow_bookmarks,
            bookmark_interval=self.config.bookmark_interval,
            timeout=params.timeout_seconds,
            initial_events_end=params.send_initial_events and params.allow_bookmarks,
        )
        try:
            sub = self.store.subscribe(target.rt.plural, target.namespace, since)
        except ApiError as err:
            return StreamingResponse(iter([error_line(err)]), media_type="application/json")
        stream = stream_events(self.store, sub, target.rt, opts)
        return StreamingResponse(stream, media_type="application/json")

    def _get(self, target: Target, as_table: bool) -> Response:
        self.requests["get", target.rt.plural] += 1
        assert target.name is not None
        obj = self.store.get(target.rt.plural, target.name, target.namespace)
        if as_table and target.subresource is None:
            meta = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            return json_response(table(target.rt, [obj], meta))
        return json_response(obj)

    async def _create(self, request: Request, target: Target) -> Response:
        self.requests["create", target.rt.plural] += 1
        body = _check_kind(target, await _body(request))
        obj = self.store.create(target.rt.plural, body, target.namespace)
        return json_response(obj, 201)

    async def _update(self, request: Request, target: Target) -> Response:
        self.requests["update", target.rt.plural] += 1
        body = _check_kind(target, await _body(request))
        _check_name(target, body)
        return json_response(self._store_update(target, body))

    def _store_update(self, target: Target, body: JsonObject) -> JsonObject:
        keep_status = target.subresource is None and "status" in target.rt.subresources
        return self.store.update(
            target.rt.plural,
            body,
            target.namespace,
            subresource=target.subresource,
            keep_status=keep_status,
        )

    async def _patch(self, request: Request, target: Target) -> Response:
        self.requests["patch", target.rt.plural] += 1
        assert target.name is not None
        content_type = request.headers.get("content-type", "")
        patch = await _body(request, yaml_ok=content_type.startswith(APPLY))
        try:
            current = self.store.get(target.rt.plural, target.name, target.namespace)
        except ApiError as err:
            if err.code != 404 or not content_type.startswith(APPLY):
                raise
            obj = self.store.create(target.rt.plural, _check_kind(target, patch), target.namespace)
            return json_response(obj, 201)
        patched = apply_patch(content_type, current, patch)
        if not isinstance(patched, dict):
            raise ApiError(422, "the patched object is not a JSON object")
        _check_name(target, patched)
        return json_response(self._store_update(target, patched))

    async def _delete(self, request: Request, target: Target) -> Response:
        self.requests["delete", target.rt.plural] += 1
        assert target.name is not None
        raw = await request.body()
        options = await _body(request) if raw.strip() else {}
        pre = options.get("preconditions") if isinstance(options, dict) else None
        if not isinstance(pre, dict):
            pre = {}
        obj = self.store.delete(
            target.rt.plural,
            target.name,
            target.namespace,
            precondition_rv=pre.get("resourceVersion"),
            precondition_uid=pre.get("uid"),
        )
        return json_response(obj)

    def _delete_collection(self, target: Target, params: ListParams) -> Response:
        self.requests["deletecollection", target.rt.plural] += 1
        _, items = self.store.list(target.rt.plural, target.namespace)
        deleted = [
            self.store.delete(target.rt.plural, o["metadata"]["name"], target.namespace)
            for o in items
            if params.selector.matches(o)
        ]
        rv = str(self.store.resource_version)
        body = {
            "kind": target.rt.list_kind,
            "apiVersion": target.rt.group_version,
            "metadata": {"resourceVersion": rv},
            "items": deleted,
        }
        return json_response(body)


async def _body(request: Request, *, yaml_ok: bool = False) -> Any:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if "protobuf" in media or "cbor" in media:
        raise ApiError(415, f"the body of the request was in an unknown format: {media}")
    raw = await request.body()
    try:
        return yaml.safe_load(raw) if yaml_ok else json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(400, f"the request body is not valid: {exc}") from None


def _check_kind(target: Target, body: Any) -> JsonObject:
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if (kind and kind != target.rt.kind) or (
        api_version and api_version != target.rt.group_version
    ):
        raise ApiError(
            400,
            f"the API version in the data ({api_version}) and kind ({kind}) do not match "
            f"{target.rt.group_version} {target.rt.kind}",
        )
    return body


def _check_name(target: Target, body: JsonObject) -> None:
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        raise ApiError(400, "metadata must be an object")
    if meta.get("name") and meta["name"] != target.name:
        raise ApiError(400, "the name of the object does not match the name on the URL")
    meta["name"] = target.name
