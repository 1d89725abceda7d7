"""The adapter to the ``nft`` command: the only module that runs it.

Transactions go to ``nft -f -`` as one script (one atomic netlink batch). A table is read
back with ``nft -j list table`` once, when the agent starts or resyncs, never per update.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

from kpng.dataplane.nft.jsonread import ruleset_from_json
from kpng.dataplane.nft.objects import NftError, Table
from kpng.dataplane.nft.transaction import Nftables, Ruleset, Transaction


@dataclass(frozen=True, slots=True)
class NftCommand:
    argv: Sequence[str] = ("nft",)

    @property
    def netns(self) -> str:
        """The namespace of an ``ip netns exec <name> nft`` command (else "")."""
        a = tuple(self.argv)
        return a[3] if len(a) > 4 and a[:3] == ("ip", "netns", "exec") else ""

    async def exec(self, args: Sequence[str], stdin: str = "") -> tuple[int, str, str]:
        """Run nft with ``args``: (exit code, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin.encode())
        return proc.returncode or 0, out.decode(), err.decode()

    async def run(self, tx: Transaction) -> None:
        if not tx.ops and not tx.packed:
            return
        rc, _, err = await self.exec(["-f", "-"], tx.script())
        if rc != 0:
            raise NftError(f"nft failed on {tx.table.ref} ({len(tx)} ops): {err.strip()[:2000]}")

    async def read(self, table: Table) -> Ruleset | None:
        rc, out, err = await self.exec(["-j", "list", "table", table.family, table.name])
        if rc != 0:
            if "No such file or directory" in err:
                return None
            raise NftError(f"nft list table {table.ref}: {err.strip()}")
        return ruleset_from_json(table, json.loads(out))

    async def delete_table(self, table: Table) -> bool:
        """Remove a table if it is there; True when it was."""
        rc, _, err = await self.exec(["delete", "table", table.family, table.name])
        if rc != 0 and "No such file or directory" not in err:
            raise NftError(f"nft delete table {table.ref}: {err.strip()}")
        return rc == 0


def _check_protocol(n: NftCommand) -> Nftables:
    return n
