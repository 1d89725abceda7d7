"""NATS JWTs (``ed25519-nkey``): encode claims signed by an nkey, decode and verify.

The small part of the NATS JWT format that auth callout needs: the server's
authorization request (signed by the server's key), our authorization response and the
user JWT it carries (both signed by the callout account's key). The PyPI packages for
this pin old or beta dependencies; the format is three base64url parts and one ed25519
signature, checked against a real nats-server in tests/security.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

import nkeys
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}
ACCOUNT = nkeys.PREFIX_BYTE_ACCOUNT
SERVER = nkeys.PREFIX_BYTE_SERVER
USER = nkeys.PREFIX_BYTE_USER


class JwtError(ValueError):
    """A JWT that is malformed, wrongly signed or signed by a key of the wrong kind."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_seed(prefix: int = ACCOUNT) -> bytes:
    """A fresh nkey seed (``SA...`` for an account)."""
    seed: bytes = nkeys.encode_seed(os.urandom(32), prefix)
    return seed


class Signer:
    """An nkey that signs JWTs; ``public`` is the issuer (``A...`` for an account)."""

    def __init__(self, seed: bytes) -> None:
        try:
            self._kp = nkeys.from_seed(bytearray(seed.strip()))
        except nkeys.NkeysError as exc:
            raise JwtError(f"not an nkey seed: {exc}") from None
        self.public: str = bytes(self._kp.public_key).decode()

    def encode(self, claims: dict[str, Any]) -> str:
        """``claims`` (with ``iss`` set to this key and a ``jti``) as a signed JWT."""
        body = {**claims, "iss": self.public, "jti": ""}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
        body["jti"] = base64.b32encode(digest).decode().rstrip("=")
        signing_input = f"{_b64(json.dumps(HEADER).encode())}.{_b64(json.dumps(body).encode())}"
        signature: bytes = self._kp.sign(signing_input.encode())
        return f"{signing_input}.{_b64(signature)}"


def public_key_bytes(public: str, prefix: int) -> bytes:
    """The raw ed25519 key of an nkey public key of kind ``prefix``; JwtError otherwise."""
    try:
        raw = base64.b32decode(public + "=" * (-len(public) % 8))
    except (binascii.Error, ValueError):
        raise JwtError(f"not an nkey public key: {public[:12]!r}") from None
    if len(raw) != 35 or raw[0] != prefix:
        raise JwtError(f"not the expected kind of nkey: {public[:12]!r}")
    if nkeys.crc16(bytearray(raw[:33])).to_bytes(2, "little") != raw[33:]:
        raise JwtError(f"nkey checksum mismatch: {public[:12]!r}")
    return raw[1:33]


def decode(token: str, issuer_prefix: int) -> dict[str, Any]:
    """The claims of ``token`` once its signature checks against its own ``iss``, which
    must be a key of kind ``issuer_prefix``; JwtError otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtError("a JWT has three parts")
    try:
        header = json.loads(_unb64(parts[0]))
        claims = json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, binascii.Error) as exc:
        raise JwtError(f"malformed JWT: {exc}") from None
    if not isinstance(header, dict) or header.get("alg") != HEADER["alg"]:
        raise JwtError(f"unexpected JWT header {header!r}")
    if not isinstance(claims, dict) or not isinstance(claims.get("iss"), str):
        raise JwtError("JWT claims without an issuer")
    key = public_key_bytes(claims["iss"], issuer_prefix)
    try:
        VerifyKey(key).verify(f"{parts[0]}.{parts[1]}".encode(), signature)
    except (BadSignatureError, ValueError):
        raise JwtError("JWT signature does not match its issuer") from None
    return claims


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of any JWT, not verified (e.g. a Kubernetes token's ``exp``, for
    scheduling only; never for a decision); {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
