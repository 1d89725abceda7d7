"""Patch formats: JSON merge patch, JSON patch and a simplified strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

from kpng_apisim.errors import ApiError, JsonObject

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

# Lists that strategic merge patch merges by key rather than replacing (the ones we serve).
_MERGE_KEYS = {"ports": "port", "ownerReferences": "uid", "conditions": "type"}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise ApiError(422, f"JSON patch path not found: /{'/'.join(parts)}")
    return doc


def _index(lst: list[Any], token: str, *, adding: bool) -> int:
    if adding and token == "-":
        return len(lst)
    if not token.isdigit() or int(token) > len(lst) - (0 if adding else 1):
        raise ApiError(422, f"JSON patch: invalid index {token!r}")
    return int(token)


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _container(doc, parts[:-1])
    if isinstance(parent, dict):
        parent[parts[-1]] = copy.deepcopy(value)
    elif isinstance(parent, list):
        parent.insert(_index(parent, parts[-1], adding=True), copy.deepcopy(value))
    else:
        raise ApiError(422, f"JSON patch: cannot add at {path!r}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise ApiError(422, "JSON patch: cannot remove the whole document")
    parent = _container(doc, parts[:-1])
    if isinstance(parent, dict) and parts[-1] in parent:
        return parent.pop(parts[-1])
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], adding=False))
    raise ApiError(422, f"JSON patch: nothing to remove at {path!r}")


def _apply_op(doc: Any, op: JsonObject) -> Any:
    kind, path = op.get("op"), op.get("path")
    if not isinstance(path, str):
        raise ApiError(422, f"JSON patch: operation without a path: {op!r}")
    if kind in ("add", "replace", "test") and "value" not in op:
        raise ApiError(422, f"JSON patch: operation without a value: {op!r}")
    if kind == "add":
        return _add(doc, path, op["value"])
    if kind == "remove":
        _remove(doc, path)
        return doc
    if kind == "replace":
        _remove(doc, path) if _pointer(path) else None
        return _add(doc, path, op["value"])
    if kind in ("move", "copy"):
        source = op.get("from")
        if not isinstance(source, str):
            raise ApiError(422, f"JSON patch: {kind} without 'from': {op!r}")
        value = (
            _remove(doc, source)
            if kind == "move"
            else copy.deepcopy(_container(doc, _pointer(source)))
        )
        return _add(doc, path, value)
    if kind == "test":
        if _container(doc, _pointer(path)) != op["value"]:
            raise ApiError(422, f"JSON patch: test failed at {path!r}")
        return doc
    raise ApiError(422, f"JSON patch: unknown operation {kind!r}")


def json_patch(target: JsonObject, ops: Any) -> Any:
    """RFC 6902, all or nothing."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise ApiError(400, "a JSON patch must be a list of operations")
    doc: Any = copy.deepcopy(target)
    for op in ops:
        doc = _apply_op(doc, op)
    return doc


def _strategic_list(field: str, target: Any, patch: list[Any]) -> list[Any]:
    key = _MERGE_KEYS.get(field)
    mergeable = (
        key is not None
        and isinstance(target, list)
        and all(isinstance(item, dict) for item in [*target, *patch])
    )
    if not mergeable or not isinstance(target, list):
        return [strategic_merge({}, p) if isinstance(p, dict) else p for p in patch]
    result = [copy.deepcopy(item) for item in target]
    for item in patch:
        index = next((i for i, t in enumerate(result) if t.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge({}, item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _reorder(items: list[Any], field: str, order: Any) -> list[Any]:
    key = _MERGE_KEYS.get(field)
    if not isinstance(order, list):
        return items
    rank = {
        (o.get(key) if key and isinstance(o, dict) else repr(o)): i for i, o in enumerate(order)
    }

    def position(item: Any) -> int:
        ident = item.get(key) if key and isinstance(item, dict) else repr(item)
        return rank.get(ident, len(rank))

    return sorted(items, key=position)


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, simplified: merge keys for a few known lists, directives honoured."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _strategic_list(key, result.get(key), value)
        else:
            result[key] = strategic_merge(result.get(key), value)
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") and isinstance(result.get(key[17:]), list):
            result[key[17:]] = _reorder(result[key[17:]], key[17:], value)
        elif key.startswith("$deleteFromPrimitiveList/") and isinstance(result.get(key[25:]), list):
            result[key[25:]] = [v for v in result[key[25:]] if v not in value]
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def apply_patch(content_type: str, target: JsonObject, patch: Any) -> Any:
    """Apply a patch of the given media type to a copy of ``target``."""
    media = content_type.split(";")[0].strip().lower()
    if media == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise ApiError(400, "a merge patch must be a JSON object")
    if media == STRATEGIC:
        return strategic_merge(copy.deepcopy(target), patch)
    if media in (MERGE, APPLY):
        return merge_patch(copy.deepcopy(target), patch)
    raise ApiError(
        415,
        f"unsupported patch type {media!r}; accepted: {MERGE}, {JSON_PATCH}, {STRATEGIC}, {APPLY}",
    )
