"""List responses: resourceVersion semantics, selectors and limit/continue pagination."""

from __future__ import annotations

from kpng_apisim.errors import ApiError, JsonObject
from kpng_apisim.paths import ContinueToken, ListParams, Target, parse_rv
from kpng_apisim.store import Store

_TOO_OLD_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)


def _snapshot_rv(store: Store, params: ListParams) -> int | None:
    """The past resourceVersion to list at, or None for the current state."""
    rv, match = params.resource_version, params.resource_version_match
    if match not in ("", "Exact", "NotOlderThan"):
        raise ApiError(400, f"invalid resourceVersionMatch: {match!r}")
    if match and not rv:
        raise ApiError(400, "resourceVersionMatch is forbidden unless resourceVersion is provided")
    if rv in ("", "0"):
        if match == "Exact":
            raise ApiError(400, "resourceVersionMatch Exact is forbidden for resourceVersion 0")
        return None
    wanted = parse_rv(rv)
    if wanted > store.resource_version:
        raise ApiError(
            504,
            f"Too large resource version: {wanted}, current: {store.resource_version}",
            reason="Timeout",
        )
    exact = match == "Exact" or (not match and params.limit > 0)
    if not exact:
        return None
    if wanted < store.compacted_rv:
        raise ApiError(
            410, f"too old resource version: {wanted} ({store.compacted_rv})", reason="Expired"
        )
    return wanted


def list_page(store: Store, target: Target, params: ListParams) -> JsonObject:
    """One page of a list, as ``<Kind>List`` JSON."""
    start: tuple[str, str] | None = None
    if params.continue_token:
        token = ContinueToken.decode(params.continue_token)
        if token.rv < store.compacted_rv:
            raise ApiError(410, _TOO_OLD_CONTINUE, reason="Expired")
        at_rv: int | None = token.rv
        start = token.start
    else:
        at_rv = _snapshot_rv(store, params)
    rv, items = store.list(target.rt.plural, target.namespace, at_rv=at_rv, copy_objects=False)
    if start is not None:
        items = [o for o in items if _key(o) > start]
    if not params.selector.empty:
        items = [o for o in items if params.selector.matches(o)]
    meta: JsonObject = {"resourceVersion": str(rv)}
    if params.limit and len(items) > params.limit:
        remaining = len(items) - params.limit
        items = items[: params.limit]
        meta["continue"] = ContinueToken(rv, _key(items[-1])).encode()
        if params.selector.empty:
            meta["remainingItemCount"] = remaining
    return {
        "kind": target.rt.list_kind,
        "apiVersion": target.rt.group_version,
        "metadata": meta,
        "items": items,
    }


def _key(obj: JsonObject) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace", ""), meta["name"])
