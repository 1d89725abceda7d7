"""docs/asyncapi.yaml passes the official AsyncAPI parser (@asyncapi/parser from npm, the
library and ruleset `asyncapi validate` runs) with no error and no warning, and agrees with
docs/bus.md and the codec on the contract's details a consumer in another language needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kpng.bus.codec import MAX_SEQ

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"
BUS_MD = ROOT / "docs" / "bus.md"
CHECKER = ROOT / "tools" / "asyncapi"


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "no node: `make test-deps` installs nodejs and npm (tools/system-deps.sh)"
    parser = CHECKER / "node_modules" / "@asyncapi" / "parser"
    assert parser.is_dir(), f"no {parser}: `make test-deps` runs npm ci in {CHECKER}"
    return subprocess.run(
        [node, str(CHECKER / "validate.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CHECKER,
    )


def test_the_asyncapi_document_has_no_error_and_no_warning() -> None:
    result = validate(ASYNCAPI)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{ASYNCAPI}: 0 problem(s)" in result.stdout
    assert " warning " not in result.stdout and " error " not in result.stdout


def test_the_check_fails_on_a_warning(tmp_path: Path) -> None:
    """Without its contact (a warning, not an error), the document does not pass."""
    doc = yaml.safe_load(ASYNCAPI.read_text())
    del doc["info"]["contact"]
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = validate(broken)
    assert result.returncode == 1
    assert "warning asyncapi-info-contact" in result.stdout


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text())
    return doc


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = _doc()["components"]["schemas"]
    return schemas


def test_every_message_has_a_unique_message_id_and_tags() -> None:
    messages = _doc()["components"]["messages"]
    ids = [m["messageId"] for m in messages.values()]
    assert len(ids) == len(set(ids)) == len(messages)
    assert all(m.get("tags") for m in messages.values())


def test_deltas_are_never_compressed() -> None:
    """bus.md 3.4: "Deltas are never compressed"; only snapshot chunks may carry zops."""
    schemas = _schemas()
    for name in ("NodeDelta", "GlobalDelta"):
        assert "zops" not in schemas[name]["properties"]
    for name in ("NodeSnapshot", "GlobalSnapshot"):
        assert "zops" in schemas[name]["properties"]


def test_seqs_are_bounded_as_the_codec_bounds_them() -> None:
    schemas = _schemas()
    assert schemas["Seq"]["minimum"] == 0 and schemas["Seq"]["maximum"] == MAX_SEQ
    assert schemas["OptionalSeq"]["minimum"] == -1
    assert schemas["OptionalSeq"]["maximum"] == MAX_SEQ
    status_seq = schemas["Status"]["properties"]["seq"]
    assert status_seq["default"] == -1 and status_seq["maximum"] == MAX_SEQ  # as bus.md 3.6
    request = schemas["SnapshotRequest"]
    assert request["properties"]["seq"] == {
        "$ref": "#/components/schemas/OptionalSeq",
        "description": request["properties"]["seq"]["description"],
    }
    assert "-1" in request["properties"]["seq"]["description"]
    assert request["then"] == {"required": ["epoch"]}  # epoch required with a seq >= 0
    assert "2^53 - 1" in BUS_MD.read_text()


def test_no_keyword_outside_the_asyncapi_2_6_schema_dialect() -> None:
    """AsyncAPI 2.6 schemas are JSON Schema draft 07: no prefixItems (2020-12) and friends."""
    text = ASYNCAPI.read_text()
    for keyword in ("prefixItems", "$defs", "dependentRequired", "unevaluatedProperties"):
        assert keyword not in text
    port = _schemas()["EndpointPort"]
    assert [i.get("type") for i in port["items"]] == ["string", "string", "integer"]
    assert port["additionalItems"] is True  # bus.md 5.2: extra elements are ignored


@pytest.mark.parametrize("doc", ["bus.md", "configuration.md", "observer.md"])
def test_tables_are_not_broken_by_blank_lines(doc: str) -> None:
    """A table row after a blank line must start a new table (a header and its separator):
    otherwise a renderer shows it as text, as happened to bus.md 3.3's epoch, seq and accept."""
    lines = (ROOT / "docs" / doc).read_text().splitlines()
    for i, line in enumerate(lines[1:-1], start=1):
        if line.startswith("|") and not lines[i - 1].strip():
            assert re.match(r"^\|( *:?-+:? *\|)+$", lines[i + 1]), f"{doc}:{i + 1}: {line}"
