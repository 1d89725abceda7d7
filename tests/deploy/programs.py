"""The kpng programs' own argument parsers, for checking the flags that deployments pass."""

from __future__ import annotations

import argparse
import importlib

MAIN_MODULES = {
    "watcher": "kpng_watcher.main",
    "agent": "kpng_agent.main",
    "observer": "kpng_observer.main",
}


def program_parser(role: str) -> argparse.ArgumentParser:
    """The parser of the program that runs as ``role`` (watcher, agent or observer)."""
    parser: argparse.ArgumentParser = importlib.import_module(MAIN_MODULES[role]).parser()
    return parser
