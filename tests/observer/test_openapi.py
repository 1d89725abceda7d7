"""The observer's OpenAPI document is typed throughout: every response has a schema, every
error a route can return is declared, and what the API answers matches what it declares."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from kpng.bus.client import ClientStats
from kpng.bus.watcher_status import WatcherStatus
from kpng.observe.explain import parse_cidrs
from kpng_observer.api import Settings, create_app
from kpng_observer.metrics import ObserverMetrics
from tests.observer.cluster import CLUSTER_CIDR
from tests.observer.test_api import NOW, fetch, observer_state

ROOT = Path(__file__).resolve().parents[2]
CHECKER = ROOT / "tools" / "asyncapi"  # the spec checkers from npm (make test-deps)
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def app(connected: bool = True) -> Any:
    state = observer_state()
    state.note_watcher_status(WatcherStatus("e1", NOW), NOW)
    metrics = ObserverMetrics(state, ClientStats, clock=lambda: NOW)
    settings = Settings(token=TOKEN, cluster_cidrs=parse_cidrs(CLUSTER_CIDR))
    return create_app(
        state, fetch, lambda: connected, metrics.registry, settings, clock=lambda: NOW
    )


OPENAPI: dict[str, Any] = app().openapi()
COMPONENTS: dict[str, Any] = OPENAPI["components"]["schemas"]
OPERATIONS = [(path, op) for path, item in OPENAPI["paths"].items() for op in item.values()]


def untyped(schema: dict[str, Any], where: str) -> list[str]:
    """Where ``schema`` lets any value through: no type, an object without properties, an
    array without items, ``{}``."""
    if "$ref" in schema:
        return []
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return [p for i, s in enumerate(schema[key]) for p in untyped(s, f"{where}.{key}[{i}]")]
    kind = schema.get("type")
    if kind in ("string", "integer", "number", "boolean", "null"):
        return []
    if kind == "array":
        items = [*schema.get("prefixItems", []), *([schema["items"]] if "items" in schema else [])]
        if not items:
            return [f"{where}: array of anything"]
        return [p for i, s in enumerate(items) for p in untyped(s, f"{where}[{i}]")]
    if kind == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if not props and not isinstance(extra, dict):
            return [f"{where}: object of anything"]
        found = [p for k, s in (props or {}).items() for p in untyped(s, f"{where}.{k}")]
        return found + (untyped(extra, f"{where}.*") if isinstance(extra, dict) else [])
    return [f"{where}: no type"]


def test_every_response_and_every_component_is_typed() -> None:
    problems = []
    for path, op in OPERATIONS:
        for code, response in op["responses"].items():
            content = response.get("content")
            if not content:
                problems.append(f"{path} {code}: no content")
                continue
            for media, body in content.items():
                problems += untyped(body.get("schema", {}), f"{path} {code} {media}")
    for name, schema in COMPONENTS.items():
        problems += untyped(schema, name)
    assert problems == []


def _params(op: dict[str, Any]) -> set[str]:
    return {p["in"] for p in op.get("parameters", []) if p["in"] != "header" or p["required"]}


def test_every_error_a_route_can_raise_is_declared() -> None:
    """401 behind the token, 404 where a path names a thing, 422 where a parameter is
    checked, 503 where the watcher is asked."""
    for path, op in OPERATIONS:
        declared = set(op["responses"])
        wanted = {"200"}
        if path.startswith(("/api/", "/metrics")):
            wanted.add("401")
        if "{" in path:
            wanted.add("404")
        if op.get("parameters"):
            wanted.add("422")
        if path.endswith(("/view", "/explain")) or path == "/readyz":
            wanted.add("503")
        assert wanted <= declared, (path, sorted(wanted - declared))
        for code in declared - {"200"}:
            ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in ("ErrorBody", "InvalidRequest", "Readiness")


# every status each request gets is declared for its route, and its body matches
REQUESTS = [
    ("/livez", {}, False, 200),
    ("/readyz", {}, False, 200),
    ("/metrics", {}, True, 200),
    ("/metrics", {}, False, 401),
    ("/api/v1/services", {}, True, 200),
    ("/api/v1/services", {}, False, 401),
    ("/api/v1/services", {"label": "a=(b"}, True, 400),
    ("/api/v1/services", {"type": "Bogus"}, True, 422),
    ("/api/v1/services/demo/web", {}, True, 200),
    ("/api/v1/services/demo/nope", {}, True, 404),
    ("/api/v1/services/demo/web/programming", {}, True, 200),
    ("/api/v1/services/demo/nope/programming", {}, True, 404),
    ("/api/v1/nodes", {}, True, 200),
    ("/api/v1/nodes/node-a1", {}, True, 200),
    ("/api/v1/nodes/nope", {}, True, 404),
    ("/api/v1/nodes/node-a1/view", {}, True, 200),
    ("/api/v1/nodes/Not_A_Name/view", {}, True, 404),
    ("/api/v1/nodes/missing/view", {}, True, 503),
    ("/api/v1/nodes/node-a1/explain", {"destination": "10.96.0.10", "port": 80}, True, 200),
    ("/api/v1/nodes/node-a1/explain", {"destination": "10.96.0.10", "port": 0}, True, 422),
    ("/api/v1/nodes/node-a1/explain", {"destination": "not-an-ip", "port": 80}, True, 422),
    ("/api/v1/nodes/missing/explain", {"destination": "10.96.0.10", "port": 80}, True, 503),
    ("/api/v1/nodes/Not_A_Name/explain", {"destination": "10.96.0.10", "port": 80}, True, 404),
    ("/api/v1/watcher", {}, True, 200),
    ("/api/v1/latency", {}, True, 200),
    ("/api/v1/latency", {"window": -1}, True, 422),
    ("/api/v1/latency/history", {}, True, 200),
    ("/api/v1/events", {"after": "x"}, True, 422),
]


def _route(url: str) -> str:
    """The OpenAPI path that ``url`` matches."""
    parts = url.split("/")
    for path, _ in OPERATIONS:
        pattern = path.split("/")
        if len(pattern) == len(parts) and all(
            p == u or p.startswith("{") for p, u in zip(pattern, parts, strict=True)
        ):
            return path
    raise LookupError(url)


def _check(schema: dict[str, Any], body: Any) -> None:
    rebased = _rebase(schema)
    resource = Resource.from_contents(OPENAPI, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    jsonschema.Draft202012Validator(rebased, registry=registry).validate(body)


def _rebase(schema: Any) -> Any:
    """``#/components/...`` refs as refs into the whole document (``urn:openapi#/...``)."""
    if isinstance(schema, dict):
        return {k: ("urn:openapi" + v if k == "$ref" else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(s) for s in schema]
    return schema


@pytest.mark.parametrize(("url", "params", "authorized", "status"), REQUESTS)
async def test_answers_are_declared_and_match_their_schema(
    url: str, params: dict[str, Any], authorized: bool, status: int
) -> None:
    transport = httpx.ASGITransport(app())
    async with httpx.AsyncClient(transport=transport, base_url="http://observer") as http:
        headers = AUTH if authorized else {}
        response = await http.get(url, params=params, headers=headers)
    assert response.status_code == status, response.text
    declared = OPENAPI["paths"][_route(url)]["get"]["responses"]
    assert str(status) in declared
    media = response.headers["content-type"].split(";")[0]
    if media == "application/json":
        _check(declared[str(status)]["content"][media]["schema"], response.json())
    else:
        assert media in declared[str(status)]["content"]


async def test_readyz_not_ready_is_a_declared_503() -> None:
    transport = httpx.ASGITransport(app(connected=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://observer") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    declared = OPENAPI["paths"]["/readyz"]["get"]["responses"]["503"]
    _check(declared["content"]["application/json"]["schema"], response.json())


def test_the_document_is_valid_openapi(tmp_path: Path) -> None:
    """Against the OpenAPI 3.1 specification's schema, every $ref resolving (an npm
    validator, @apidevtools/swagger-parser, installed beside the AsyncAPI parser)."""
    node = shutil.which("node")
    assert node, "no node: `make test-deps` installs nodejs and npm (tools/system-deps.sh)"
    assert (CHECKER / "node_modules" / "@apidevtools" / "swagger-parser").is_dir(), (
        f"`make test-deps` runs npm ci in {CHECKER}"
    )
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(OPENAPI))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**OPENAPI, "info": {"title": "no version"}}))
    script = str(CHECKER / "validate-openapi.mjs")
    ok = subprocess.run([node, script, str(document)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "valid OpenAPI 3.1" in ok.stdout
    bad = subprocess.run([node, script, str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "version" in bad.stdout
