"""The agent imports nats-py without aiohttp unless a NATS URL is a websocket one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kpng_agent.imports import absent, websockets

CHECK = """
import sys
from kpng_agent.imports import import_bus
import_bus(sys.argv[1])
import nats.aio.transport as t
print("aiohttp" in sys.modules, t.aiohttp is not None)
import aiohttp  # still importable afterwards, for whatever wants it
print("aiohttp" in sys.modules)
"""


@pytest.mark.parametrize(
    ("urls", "loaded"),
    [
        ("nats://127.0.0.1:4222", "False False\nTrue"),
        ("tls://a:4222, nats://b:4222", "False False\nTrue"),
        ("nats://a:4222,wss://b:443", "True True\nTrue"),
    ],
)
def test_the_websocket_client_is_imported_only_for_a_websocket_url(urls: str, loaded: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK, urls], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == loaded


def test_absent_takes_its_mark_back_and_leaves_a_loaded_module_alone() -> None:
    assert websockets("WS://x") and not websockets("nats://x")
    with absent("kpng_no_such_module_for_test"):
        assert sys.modules["kpng_no_such_module_for_test"] is None
        with pytest.raises(ImportError):
            import kpng_no_such_module_for_test  # type: ignore[import-not-found]  # noqa: F401
    assert "kpng_no_such_module_for_test" not in sys.modules
    with absent("sys"):
        assert sys.modules["sys"] is sys
