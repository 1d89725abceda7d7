"""Connecting to NATS, the parts that need no nats-py: the connect options a
:class:`~kpng.bus.auth.BusAuth` gives (secrets read from their files, a token re-read at each
reconnect, a verifying TLS context), and errors said so that an operator knows what to fix
(:func:`explain`; :func:`tls_problem` finds why a TLS handshake fails when nats-py only says
that no server was available). Used by :mod:`kpng.bus.nats`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

from kpng.bus.auth import BusAuth
from kpng.bus.protocol import BusError

log = logging.getLogger(__name__)


def credential_options(auth: BusAuth) -> dict[str, Any]:
    """nats-py's connect options for ``auth``, secrets read from their files."""
    options: dict[str, Any] = {}
    if auth.creds_file:
        options["user_credentials"] = _readable(auth.creds_file, "--nats-creds")
    elif auth.nkey_file:
        options["nkeys_seed"] = _readable(auth.nkey_file, "--nats-nkey")
    elif auth.token_file:
        options["token"] = _token_reader(auth.token_file)
    elif auth.user:
        options["user"] = auth.user
        options["password"] = _secret(auth.password_file, "--nats-password-file")
    return options


def tls_options(auth: BusAuth, urls: list[str]) -> dict[str, Any]:
    """An SSL context that verifies the server (and presents a client certificate)."""
    if not auth.tls(urls):
        return {}
    try:
        context = ssl.create_default_context(cafile=auth.tls_ca or None)
        if auth.tls_cert:
            context.load_cert_chain(auth.tls_cert, auth.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise BusError(
            f"TLS settings: {exc} (--nats-tls-ca, --nats-tls-cert, --nats-tls-key)"
        ) from None
    options: dict[str, Any] = {"tls": context}
    if auth.tls_server_name:
        options["tls_hostname"] = auth.tls_server_name
    return options


def _readable(path: str, flag: str) -> str:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise BusError(f"{flag} {path}: {exc.strerror or exc}") from None
    return path


def _secret(path: str, flag: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise BusError(f"{flag} {path}: {exc.strerror or exc}") from None
    if not secret:
        raise BusError(f"{flag} {path}: the file is empty")
    return secret


def _token_reader(path: str) -> Callable[[], str]:
    """The token as the file holds it at each (re)connect: kubelet rotates projected
    tokens in place. The first read must succeed (BusError); later ones fall back to the
    last good token (a half-written file is retried at the next connect)."""
    last = [_secret(path, "--nats-token-file")]

    def read() -> str:
        try:
            last[0] = _secret(path, "--nats-token-file")
        except BusError as exc:
            log.warning("%s; presenting the last token read", exc)
        return last[0]

    return read


def explain(exc: BaseException) -> str:
    """nats-py's and ssl's errors, said so that an operator knows what to fix."""
    text = str(exc).removeprefix("nats: ").strip("'")
    lower = text.lower()
    if "authorization violation" in lower:
        return "authorization violation: the server refused these credentials"
    if "authentication expired" in lower or "user authentication revoked" in lower:
        return f"{text}: the credentials are no longer valid"
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in lower:
        reason = getattr(exc, "verify_message", "") or text
        return (
            f"TLS: the server's certificate was not accepted ({reason}); check --nats-tls-ca "
            "and that the URL's host (or --nats-tls-server-name) is in the certificate"
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {text}"
    return text or type(exc).__name__


async def tls_problem(url: str, secured: dict[str, Any], timeout: float) -> str:
    """Why the TLS handshake with the server at ``url`` fails ("" if it does not): the
    server's INFO line in clear, then the upgrade, as nats-py does it."""
    address = url.split("://", 1)[-1].rsplit("@", 1)[-1]
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or address
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port or 4222)), timeout
        )
    except (OSError, TimeoutError, ValueError) as exc:
        return explain(exc) if str(exc) else "no answer in time"
    try:
        await asyncio.wait_for(reader.readline(), timeout)
        name = secured.get("tls_hostname") or host
        await asyncio.wait_for(writer.start_tls(secured["tls"], server_hostname=name), timeout)
        return ""
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return explain(exc)
    finally:
        writer.close()
