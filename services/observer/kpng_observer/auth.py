"""Optional bearer-token auth for the observer's API, and the listen policy.

Without a token the API is open, which is only allowed on a loopback address unless the
operator says ``--insecure``. With a token, ``/api/*`` and ``/metrics`` need
``Authorization: Bearer <token>``; ``/api/v1/events`` also takes ``?access_token=`` because a
browser's EventSource cannot send headers. Health probes, the dashboard's static files and
the OpenAPI document stay open (they hold no cluster data).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


class InsecureListen(ValueError):
    pass


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to serve an open API beyond this machine unless ``insecure`` is set."""
    if token is None and not insecure and not is_loopback(host):
        raise InsecureListen(
            f"refusing to serve the API without a token on {host}: "
            "pass --token/--token-file, or --insecure to allow it"
        )


def read_token(token: str | None, token_file: Path | None) -> str | None:
    if token_file is not None:
        token = token_file.read_text().strip()
        if not token:
            raise ValueError(f"token file {token_file} is empty")
    return token or None


bearer = HTTPBearer(auto_error=False, description="the observer's --token")


def require_token(token: str | None) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: checks the bearer token (or ``access_token`` on the SSE route)."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials is not None else None
        if given is None and request.url.path == "/api/v1/events":
            given = request.query_params.get("access_token")
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"}
            )

    return check
