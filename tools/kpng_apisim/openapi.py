"""A minimal OpenAPI v3 document: just enough for kubectl's server-side field validation.

kubectl looks for a PATCH operation tagged with the resource's group-version-kind and a
``fieldValidation`` parameter; finding one, it leaves validation to the server (which
here accepts any field) instead of downloading schemas for client-side validation.
"""

from __future__ import annotations

from kpng_apisim.errors import ApiError, JsonObject
from kpng_apisim.resources import GROUPS, ResourceType, resources_of

_HASH = "kpng-apisim-1"


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def openapi_root() -> JsonObject:
    paths = {
        _gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash={_HASH}"}
        for g, versions in GROUPS.items()
        for v in versions
    }
    return {"paths": paths}


def _operation(rt: ResourceType, action: str) -> JsonObject:
    return {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {"200": {"description": "OK"}},
    }


def _item_path(rt: ResourceType) -> str:
    prefix = "/" + _gv_path(rt.group, rt.version)
    if rt.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
    return f"{prefix}/{rt.plural}/{{name}}"


def openapi_group_version(path: str) -> JsonObject:
    """The document for ``api/v1`` or ``apis/<group>/<version>``."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        group, version = "", parts[1]
    elif parts[:1] == ["apis"] and len(parts) == 3:
        group, version = parts[1], parts[2]
    else:
        raise ApiError(404, f"no OpenAPI document for {path!r}")
    served = resources_of(group, version)
    if not served:
        raise ApiError(404, f"no OpenAPI document for {path!r}")
    paths: JsonObject = {}
    for rt in served:
        collection = _item_path(rt).rsplit("/", 1)[0]
        paths[collection] = {"post": _operation(rt, "post")}
        paths[_item_path(rt)] = {"patch": _operation(rt, "patch"), "put": _operation(rt, "put")}
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }
