"""The kube-style ``--leader-elect*`` flags and the election they describe."""

from __future__ import annotations

import argparse

from kpng.runtime.process import positive_float
from kpng_watcher.election import ElectionTiming


def add_election_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "leader election (--source kube only)",
        "Run several watchers; the holder of a coordination.k8s.io/v1 Lease publishes, the "
        "others keep their views current and take over when its lease expires.",
    )
    g.add_argument(
        "--leader-elect",
        action="store_true",
        help="elect a leader among the watchers before publishing (default: off, one watcher)",
    )
    g.add_argument(
        "--leader-elect-lease-duration",
        type=positive_float,
        default=15.0,
        metavar="SECONDS",
        help="how long standbys wait after the last renewal they saw before taking over "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--leader-elect-renew-deadline",
        type=positive_float,
        default=10.0,
        metavar="SECONDS",
        help="the leader stops publishing if it could not renew for this long; must be "
        "under the lease duration (default: %(default)s)",
    )
    g.add_argument(
        "--leader-elect-retry-period",
        type=positive_float,
        default=2.0,
        metavar="SECONDS",
        help="between attempts to acquire or renew (default: %(default)s)",
    )
    g.add_argument(
        "--leader-elect-resource-name",
        default="kpng-watcher",
        metavar="NAME",
        help="the Lease's name (default: %(default)s)",
    )
    g.add_argument(
        "--leader-elect-resource-namespace",
        default="",
        metavar="NAMESPACE",
        help="the Lease's namespace (default: the pod's, from POD_NAMESPACE or the service "
        "account, else kube-system)",
    )


def election_timing(args: argparse.Namespace, p: argparse.ArgumentParser) -> ElectionTiming | None:
    """The timing if ``--leader-elect`` was given (a usage error if it cannot work)."""
    if not args.leader_elect:
        return None
    if args.source != "kube":
        p.error("--leader-elect needs --source kube (a file source runs as a single watcher)")
    try:
        return ElectionTiming(
            args.leader_elect_lease_duration,
            args.leader_elect_renew_deadline,
            args.leader_elect_retry_period,
        )
    except ValueError as exc:
        p.error(str(exc))
    raise AssertionError  # p.error exits
