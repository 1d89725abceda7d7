"""The observer's HTTP API, with its bearer token (the CLI's only I/O; the standard library's
urllib, so the command line needs no extra package)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

API = "/api/v1"


class ObserverError(Exception):
    """The observer could not be asked, or refused; the message says which and why."""


class ObserverClient:
    def __init__(self, base: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.timeout = timeout

    def url(self, path: str, params: Mapping[str, object] | None = None) -> str:
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        tail = f"?{urllib.parse.urlencode(query)}" if query else ""
        return f"{self.base}{API}{path}{tail}"

    def _request(self, url: str, accept: str) -> urllib.request.Request:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return urllib.request.Request(url, headers=headers)

    def get(self, path: str, params: Mapping[str, object] | None = None) -> Any:
        url = self.url(path, params)
        try:
            with urllib.request.urlopen(
                self._request(url, "application/json"), timeout=self.timeout
            ) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ObserverError(f"GET {url}: {exc.code} {_detail(exc)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise ObserverError(f"GET {url}: {_reason(exc)}") from None

    def stream(self, path: str, params: Mapping[str, object] | None = None) -> Iterator[str]:
        """The lines of a ``text/event-stream`` response, as they arrive."""
        url = self.url(path, params)
        try:
            # no read timeout: the stream is quiet between events (keep-alives every 15 s)
            with urllib.request.urlopen(self._request(url, "text/event-stream")) as response:
                for raw in response:
                    yield raw.decode()
        except urllib.error.HTTPError as exc:
            raise ObserverError(f"GET {url}: {exc.code} {_detail(exc)}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ObserverError(f"GET {url}: {_reason(exc)}") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return str(exc.reason)
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail) if detail else str(exc.reason)


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc)
