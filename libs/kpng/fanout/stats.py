"""What the fan-out did: encodings, messages and bytes, snapshots, catch-ups, compression."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FanoutStats:
    encodings: int = 0
    messages: int = 0
    bytes: int = 0
    node_messages: int = 0  # deltas on node subjects (messages and bytes count the global too)
    node_bytes: int = 0
    snapshots: int = 0
    snapshot_bytes: int = 0
    snapshot_cache_hits: int = 0
    catchups: int = 0  # snapshot requests answered with only the missed deltas
    catchup_bytes: int = 0
    rebases: int = 0  # views of another epoch taken on by their digest, without operations
    compressions: int = 0  # runs compressed into zstd frames (snapshots and catch-ups)
    compressed_in: int = 0  # their bytes before
    compressed_out: int = 0  # and after
    casts_offered: int = 0  # zone parts made into casts (kpng.fanout.casts)
    cast_rounds: int = 0  # casts published (each once for everyone waiting)
    cast_bytes: int = 0  # their bytes
    refused_services: int = 0  # versions refused: an operation would not fit a message
