"""Per-node identity on the bus: the subjects one node's agent may use, and no other's.

An agent with a per-node identity hears only its node's deltas, asks only for its node's
snapshot (replies come on an inbox of its own, :func:`node_inbox`) and publishes only its
node's status. It also hears casts (zones' parts of node views, ``<prefix>.v1.cast.*``):
what they hold any node's agent may read from the API server too (every endpoint slice,
as kube-proxy's ``system:node-proxier``), and only the watcher publishes them. The server
enforces it: kpng-auth puts these permissions in the user JWT it issues through auth
callout, and kpng-nats-config in a per-node user of its config.
"""

from __future__ import annotations

from kpng.bus.permissions import Permissions
from kpng.bus.subjects import Subjects


def node_inbox(subjects: Subjects, node: str) -> str:
    """The reply-inbox prefix of ``node``'s agent (its inboxes are ``<this>.<id>...``)."""
    return f"_INBOX.{subjects.prefix}.{subjects.token(node)}"


def node_permissions(subjects: Subjects, node: str) -> Permissions:
    """Exactly ``node``'s subjects: its status and snapshot requests out; its deltas, the
    casts and the replies on its own inbox in. ValueError for an invalid node name."""
    return Permissions(
        publish=(subjects.node_status(node), subjects.node_snapshot(node)),
        subscribe=(
            subjects.node_delta(node),
            subjects.all_casts,
            node_inbox(subjects, node) + ".>",
        ),
    )
