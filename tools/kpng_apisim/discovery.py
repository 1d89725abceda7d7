"""Discovery documents: /version, /api, /apis and the per group-version resource lists."""

from __future__ import annotations

from kpng_apisim.errors import ApiError, JsonObject
from kpng_apisim.resources import GROUPS, VERBS, ResourceType, resources_of

KUBE_VERSION = {"major": "1", "minor": "32"}


def version() -> JsonObject:
    return {
        **KUBE_VERSION,
        "gitVersion": "v1.32.0-kpng-apisim",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> JsonObject:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str) -> JsonObject:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in GROUPS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> JsonObject:
    groups = [_group(name) for name in GROUPS if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(name: str) -> JsonObject:
    if name not in GROUPS or not name:
        raise ApiError(404, f"the server could not find the requested resource (group {name})")
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def _resource_entry(rt: ResourceType) -> list[JsonObject]:
    main: JsonObject = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(VERBS),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    subs: list[JsonObject] = [
        {
            "name": f"{rt.plural}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": ["get", "patch", "update"],
        }
        for sub in rt.subresources
    ]
    return [main, *subs]


def api_resource_list(group: str, version: str) -> JsonObject:
    served = resources_of(group, version)
    if not served:
        gv = f"{group}/{version}" if group else version
        raise ApiError(404, f"the server could not find the requested resource ({gv})")
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for rt in served for entry in _resource_entry(rt)],
    }
