"""kpng.runtime.metrics.serve: /metrics, and the pages a service adds on the same listener."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping

import pytest
from prometheus_client import CollectorRegistry, Gauge

from kpng.runtime.metrics import Page, PageAnswer, serve


def get(url: str, method: str = "GET") -> tuple[int, str, str]:
    """Status, content type and body, whatever the status."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


@pytest.fixture
def served() -> Iterator[tuple[str, list[PageAnswer]]]:
    """A server with a gauge and ``/readyz`` answering the last of a list the test sets."""
    registry = CollectorRegistry()
    Gauge("kpng_test_up", "up", registry=registry).set(1)
    answers = [PageAnswer(503, b"not yet\n")]
    pages: Mapping[str, Page] = {"/readyz": lambda: answers[-1]}
    server, thread = serve(registry, "127.0.0.1", 0, pages=pages)
    try:
        yield f"http://127.0.0.1:{server.server_port}", answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_page_answers_what_its_function_says_each_time(
    served: tuple[str, list[PageAnswer]],
) -> None:
    url, answers = served
    assert get(f"{url}/readyz") == (503, "text/plain; charset=utf-8", "not yet\n")
    answers.append(PageAnswer(200, b'{"ready": true}', "application/json"))
    assert get(f"{url}/readyz") == (200, "application/json", '{"ready": true}')


def test_metrics_are_served_beside_the_pages(served: tuple[str, list[PageAnswer]]) -> None:
    url, _ = served
    status, content_type, body = get(f"{url}/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    assert "kpng_test_up 1.0" in body
    # a page answers GET only; anything else is the metrics server's (405)
    assert get(f"{url}/readyz", method="POST")[0] == 405


def test_without_pages_every_path_is_the_metrics() -> None:
    registry = CollectorRegistry()
    Gauge("kpng_test_up", "up", registry=registry).set(1)
    server, thread = serve(registry, "127.0.0.1", 0)
    try:
        status, _, body = get(f"http://127.0.0.1:{server.server_port}/readyz")
        assert status == 200 and "kpng_test_up 1.0" in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
