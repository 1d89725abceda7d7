"""What each role may do on the bus, as NATS subject permissions (the server enforces them).

- watcher: publishes node and global deltas, snapshot replies, casts and its own status;
  hears snapshot requests and statuses;
- agent: hears node deltas, asks for snapshots, publishes statuses; never a delta, a
  snapshot reply or anything global;
- observer: hears deltas, ticks, statuses and the watcher's status, asks for snapshots;
  publishes nothing else;
- consumer (third parties): hears the global view (and, if allowed, node views) and asks
  for snapshots; publishes nothing else.

Replies travel on inboxes (``_INBOX.>``): every role that asks for snapshots hears them.
Every role that asks for node snapshots also hears casts (``<prefix>.v1.cast.*``: zones'
parts of node views, which only the watcher publishes).
With one shared agent role an agent's credentials can read any node's view and report any
node's status; per-node identity (auth callout) narrows that to its own node.
"""

from __future__ import annotations

from dataclasses import dataclass

from kpng.bus.subjects import Subjects

ROLES = ("watcher", "agent", "observer", "consumer")
INBOXES = "_INBOX.>"


@dataclass(frozen=True, slots=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]


NONE = Permissions((), ())


def role_permissions(role: str, subjects: Subjects, node_views: bool = False) -> Permissions:
    """The subjects ``role`` may publish and subscribe to under ``subjects``' prefix;
    ``node_views``: a consumer may also follow node views."""
    s = subjects
    node_snapshots, node_statuses, casts = s.all_snapshots, s.all_status, s.all_casts
    if role == "watcher":
        return Permissions(
            (s.all_deltas, s.global_delta, casts, s.watcher_status, INBOXES),
            (node_snapshots, s.global_snapshot, node_statuses),
        )
    if role == "agent":
        return Permissions((node_statuses, node_snapshots), (s.all_deltas, casts, INBOXES))
    if role == "observer":
        return Permissions(
            (node_snapshots, s.global_snapshot),
            (s.all_deltas, node_statuses, s.global_delta, casts, s.watcher_status, INBOXES),
        )
    if role == "consumer":
        if node_views:
            return Permissions(
                (s.global_snapshot, node_snapshots),
                (s.global_delta, s.all_deltas, casts, INBOXES),
            )
        return Permissions((s.global_snapshot,), (s.global_delta, INBOXES))
    raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
