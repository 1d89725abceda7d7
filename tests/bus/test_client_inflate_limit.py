"""A client bounds a ``zops`` frame's content by its bus's max_payload (issue 14): the
watcher never compresses more than one message's worth of operations into a frame."""

from __future__ import annotations

import pytest

from kpng.bus.client import NodeViewClient, SnapshotUnavailable
from kpng.bus.codec import encode_op, ops_array, pack_compressed_chunk
from kpng.bus.compression import compress
from kpng.bus.fake import FakeServer
from kpng.diff import DeleteEndpoint

MAX_PAYLOAD = 64 * 1024


def frame_of(size: int) -> bytes:
    op = encode_op(DeleteEndpoint("default/web", "10.244.0.1"))
    return compress(ops_array([op] * (size // len(op))))


@pytest.mark.parametrize(
    ("inflated", "accepted"), [(MAX_PAYLOAD // 2, True), (4 * MAX_PAYLOAD, False)]
)
async def test_a_frame_inflating_beyond_max_payload_is_refused(
    inflated: int, accepted: bool
) -> None:
    server = FakeServer(max_payload=MAX_PAYLOAD)
    watcher, agent = server.connect(), server.connect()
    frame = frame_of(inflated)
    assert len(frame) < MAX_PAYLOAD // 4

    async def answer(data: bytes, subject: str, reply: str) -> None:
        await watcher.publish(reply, pack_compressed_chunk("e1", 1, 0, 1, frame))

    await watcher.subscribe(watcher.subjects.node_snapshot("n1"), answer)
    client = NodeViewClient(agent, "n1")
    try:
        if accepted:
            [chunk] = await client.fetch_snapshot()
            assert len(chunk.ops) > 0
        else:
            with pytest.raises(SnapshotUnavailable, match="inflates to"):
                await client.fetch_snapshot()
    finally:
        await agent.close()
        await watcher.close()
