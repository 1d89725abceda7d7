"""The bus flags every kpng program takes: where NATS is, who we are, and TLS.

Each flag reads a ``KPNG_*`` environment variable (``--nats-creds``: ``KPNG_NATS_CREDS``)
when parsed by :func:`kpng.runtime.config.parse_args`, as every flag of every program does;
secrets are only ever named by file. Without credentials and TLS a
program refuses to start unless ``--nats-insecure`` says so; then it warns once.
"""

from __future__ import annotations

import argparse
import logging

from kpng.bus.auth import INSECURE_WARNING, BusAuth, split_urls

log = logging.getLogger(__name__)

_FLAGS = (
    # flag, attribute, help
    ("--nats-creds", "creds_file", "a .creds file (user JWT and nkey seed)"),
    ("--nats-nkey", "nkey_file", "a file holding an nkey seed"),
    ("--nats-token-file", "token_file", "a file holding a token"),
    ("--nats-user", "user", "a user name, with --nats-password-file"),
    ("--nats-password-file", "password_file", "a file holding the user's password"),
    ("--nats-tls-ca", "tls_ca", "CA bundle (PEM) that the server's certificate must chain to"),
    ("--nats-tls-cert", "tls_cert", "client certificate (PEM) for mutual TLS, with --nats-tls-key"),
    ("--nats-tls-key", "tls_key", "the client certificate's key (PEM)"),
    (
        "--nats-tls-server-name",
        "tls_server_name",
        "the name to verify in the server's certificate when it is not the URL's host",
    ),
)


def add_bus_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "bus (NATS): every flag also reads KPNG_<FLAG> from the environment"
    )
    g.add_argument(
        "--nats",
        default="nats://127.0.0.1:4222",
        help="NATS server URL(s), comma-separated; tls:// for TLS (default: %(default)s)",
    )
    g.add_argument(
        "--prefix",
        default="kpng",
        help="bus subject prefix (default: %(default)s)",
    )
    for flag, attr, text in _FLAGS:
        g.add_argument(
            flag,
            dest=f"nats_{attr}",
            default="",
            metavar="FILE" if attr.endswith(("file", "_ca", "_cert", "_key")) else None,
            help=text,
        )
    g.add_argument(
        "--nats-insecure",
        action="store_true",
        help="connect without credentials or TLS if none are given (logged as a warning: "
        "anyone who reaches NATS can then read and change every node's rules)",
    )


def bus_auth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> BusAuth:
    """The bus settings the flags give; a usage error if they contradict each other or
    lack credentials or TLS without --nats-insecure."""
    auth = BusAuth(
        **{attr: getattr(args, f"nats_{attr}") for _, attr, _ in _FLAGS},
        insecure=args.nats_insecure,
    )
    errors = auth.errors()
    if errors:
        parser.error("; ".join(errors))
    missing = auth.missing(split_urls(args.nats))
    if missing and not auth.insecure:
        what = " and ".join(missing)
        parser.error(
            f"no NATS {what}: give --nats-creds, --nats-nkey, --nats-token-file or --nats-user "
            "with --nats-password-file, and a tls:// URL or --nats-tls-ca (or KPNG_NATS_* "
            "variables); --nats-insecure connects without them"
        )
    if missing:
        log.warning(INSECURE_WARNING.format(missing=" or ".join(missing)))
    return auth
