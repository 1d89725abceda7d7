"""nftables objects as plain values, and their nft command text.

Elements carry their key and value as nft tokens (``("10.0.0.1", "tcp", "80")``) so that the
same value comes out of rendering and out of reading a live table back (see
:mod:`kpng.dataplane.nft.jsonread`). Rules are text: the fixed chains of
:mod:`kpng.dataplane.nft.skeleton` and the few shared chains :mod:`kpng.dataplane.nft.render`
makes (``pick_<N>``, hairpin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FAMILIES = ("ip", "ip6")


class NftError(ValueError):
    """A malformed object or transaction, or one the dataplane refused."""


def check_name(what: str, name: str) -> str:
    if not NAME.match(name):
        raise NftError(f"bad {what} name {name!r}")
    return name


@dataclass(frozen=True, slots=True)
class Table:
    family: str
    name: str

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise NftError(f"unsupported family {self.family!r}")
        check_name("table", self.name)

    @property
    def ref(self) -> str:
        return f"{self.family} {self.name}"


@dataclass(frozen=True, slots=True)
class Hook:
    type: str  # "nat" or "filter"
    hook: str  # "prerouting", "output", ...
    priority: int

    @property
    def text(self) -> str:
        return f"type {self.type} hook {self.hook} priority {self.priority} ;"


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    rules: tuple[str, ...] = ()
    hook: Hook | None = None

    def __post_init__(self) -> None:
        check_name("chain", self.name)

    @property
    def text(self) -> str:
        """Everything that defines the chain, for digests."""
        head = self.hook.text if self.hook else ""
        return "\n".join((self.name, head, *self.rules))


@dataclass(frozen=True, slots=True)
class Set:
    """A set (``data`` empty) or a map (``data`` is the value type, or ``verdict``)."""

    name: str
    type: str  # "ipv4_addr . inet_proto . inet_service" or "typeof ..."
    data: str = ""
    flags: tuple[str, ...] = ()
    timeout: int = 0

    def __post_init__(self) -> None:
        check_name("set", self.name)

    @property
    def is_map(self) -> bool:
        return bool(self.data)

    @property
    def text(self) -> str:
        kind = self.type if self.type.startswith("typeof ") else f"type {self.type}"
        if self.data:
            kind += f" : {self.data}"
        parts = [kind]
        if self.flags:
            parts.append("flags " + ",".join(self.flags))
        if self.timeout:
            parts.append(f"timeout {self.timeout}s")
        return " ; ".join(parts) + " ;"


Token = str
Key = tuple[Token, ...]


class Element(NamedTuple):
    """One element of a set (``value`` is None) or a map.

    A named tuple rather than a frozen dataclass: a 10k-service table holds ~170k of them,
    and tuple construction, hashing and equality run in C. :func:`check_element` validates
    (transactions call it as elements are added)."""

    set: str
    key: Key
    value: Key | None = None
    comment: str = ""

    @property
    def key_text(self) -> str:
        text = " . ".join(self.key)
        return f'{text} comment "{self.comment}"' if self.comment else text

    @property
    def text(self) -> str:
        if self.value is None:
            return self.key_text
        return f"{self.key_text} : {' . '.join(self.value)}"


def check_element(e: Element) -> Element:
    if not e.key:
        raise NftError(f"empty key in {e.set}")
    if e.comment and ('"' in e.comment or len(e.comment) > 128):
        raise NftError(f"bad comment {e.comment!r} in {e.set}")
    return e


Object = Chain | Set | Element
