"""What ``nft -f`` sends for a script: its netlink batch, captured with ``strace``.

``python -m tests.nft.capture NAME`` (root, nft 1.0.6, strace) rewrites
``tests/nft/data/skeleton-NAME.hex``: the batch nft sends for the skeleton of
``CONFIGS[NAME]`` (in a network namespace made for it), one netlink message a line as hex. The
pure tests compare kpng's own encoding of the same objects with it (``test_netlink_skeleton``).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from kpng.dataplane.nft.skeleton import Config

DATA = Path(__file__).parent / "data"
CONFIGS = {
    "ip": Config(
        4, node="node-a", pod_cidrs=("10.244.0.0/16",), nodeport_cidrs=("192.168.0.10/32",)
    ),
    "ip6": Config(6, node="node-a", pod_cidrs=("fd00:244::/64",), nodeport_cidrs=("fd00::10/128",)),
    # pod traffic by input interface (--detect-local-mode): a bridge's name, a name prefix
    "ip-bridge": Config(
        4, node="node-a", nodeport_cidrs=("192.168.0.10/32",), pod_interface="cbr0"
    ),
    "ip6-prefix": Config(
        6,
        node="node-a",
        pod_cidrs=("fd00:244::/64",),
        nodeport_cidrs=("fd00::10/128",),
        pod_interface="pod*",
    ),
}
_ROW = re.compile(r"^ \| [0-9a-f]{5}  ((?:[0-9a-f]{2} {1,2}){1,16})")


def messages(batch: bytes) -> list[bytes]:
    """The netlink messages of a batch."""
    out, at = [], 0
    while at < len(batch):
        (n,) = struct.unpack_from("=I", batch, at)
        out.append(batch[at : at + n])
        at += (n + 3) & ~3
    return out


def sent(script: str, netns: str) -> bytes:
    """The bytes of the batch ``nft -f`` sends for ``script`` (its one ``sendmsg``)."""
    with tempfile.TemporaryDirectory() as tmp:
        trace, path = Path(tmp) / "trace", Path(tmp) / "script.nft"
        path.write_text(script)
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                netns,
                "strace",
                "-e",
                "trace=sendmsg",
                "-e",
                "write=3",
                "-o",
                str(trace),
                "nft",
                "-f",
                str(path),
            ],
            check=True,
        )
        out = bytearray()
        for line in trace.read_text().splitlines():
            m = _ROW.match(line)
            if m:
                out += bytes.fromhex(m.group(1).replace(" ", ""))
        return bytes(out)


def main() -> int:
    from kpng.dataplane.nft.planner import Planner
    from kpng.diff import View

    name = sys.argv[1]
    c = CONFIGS[name]
    tx = Planner(c).plan_full(View(), None)
    ns = f"kpng-capture-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        batch = sent(tx.script(), ns)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    text = "\n".join(m.hex() for m in messages(batch)) + "\n"
    (DATA / f"skeleton-{name}.hex").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
