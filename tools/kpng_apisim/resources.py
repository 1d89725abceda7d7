"""The resource types the simulator serves."""

from __future__ import annotations

from dataclasses import dataclass

from kpng_apisim.errors import ApiError


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource: where it lives in the API and how it is named."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

SERVICES = ResourceType("", "v1", "services", "service", "Service", True, ("svc",), ("status",))
NAMESPACES = ResourceType(
    "", "v1", "namespaces", "namespace", "Namespace", False, ("ns",), ("status", "finalize")
)
NODES = ResourceType("", "v1", "nodes", "node", "Node", False, ("no",), ("status",))
ENDPOINT_SLICES = ResourceType(
    "discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", True
)

LEASES = ResourceType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True)

ALL_RESOURCES: tuple[ResourceType, ...] = (
    SERVICES,
    NAMESPACES,
    NODES,
    ENDPOINT_SLICES,
    LEASES,
)

GROUPS: dict[str, tuple[str, ...]] = {
    "": ("v1",),
    "discovery.k8s.io": ("v1",),
    "coordination.k8s.io": ("v1",),
}


def resources_of(group: str, version: str) -> tuple[ResourceType, ...]:
    return tuple(r for r in ALL_RESOURCES if r.group == group and r.version == version)


def lookup(group: str, version: str, plural: str) -> ResourceType:
    for rt in resources_of(group, version):
        if rt.plural == plural:
            return rt
    gv = f"{group}/{version}" if group else version
    raise ApiError(404, f"the server could not find the requested resource ({plural} in {gv})")


def by_plural(plural: str) -> ResourceType:
    for rt in ALL_RESOURCES:
        if rt.plural == plural:
            return rt
    raise KeyError(plural)
