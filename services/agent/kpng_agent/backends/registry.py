"""The agent's backends, found through the ``kpng.backends`` entry points.

Each plugin is loaded (its module imported) once, when the agent builds its parser; a plugin
that fails to load, to add its flags, or that is registered twice is kept aside as *broken*,
with the reason, and never takes the others down: choosing it is an error that says why.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from kpng.dataplane.backend import Backend
from kpng.dataplane.plugin import ENTRY_POINT_GROUP, BackendArgumentError, BackendPlugin

# kpng's own backends, as pyproject.toml registers them. An editable install of kpng made
# before pyproject.toml declared its entry points has metadata without them (entry points are
# written at install time only), so the agent adds the built-in ones its metadata lacks.
BUILTIN = (
    EntryPoint("dump", "kpng_agent.backends.dump:PLUGIN", ENTRY_POINT_GROUP),
    EntryPoint("nftables", "kpng_agent.nftflags:PLUGIN", ENTRY_POINT_GROUP),
)


class PluginError(Exception):
    """A backend that cannot be used, and why."""


def with_builtins(found: Iterable[EntryPoint]) -> list[EntryPoint]:
    """The entry points found, plus each built-in one the installed metadata lacks."""
    out = list(found)
    have = {(ep.name, ep.value) for ep in out}
    return out + [ep for ep in BUILTIN if (ep.name, ep.value) not in have]


def origin(ep: EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "kpng, built in"
    return f"{ep.value} from {where}"


class Backends:
    """The usable plugins by name, and the broken ones with their reason."""

    def __init__(self, found: Iterable[EntryPoint]) -> None:
        self.plugins: dict[str, BackendPlugin] = {}
        self.broken: dict[str, str] = {}
        by_name: dict[str, list[EntryPoint]] = {}
        for ep in found:
            by_name.setdefault(ep.name, []).append(ep)
        for name, eps in sorted(by_name.items()):
            if len(eps) > 1:
                self.broken[name] = f"backend {name!r} is registered {len(eps)} times: " + (
                    "; ".join(origin(ep) for ep in eps)
                )
            else:
                self._load(eps[0])

    def _load(self, ep: EntryPoint) -> None:
        try:
            plugin = ep.load()
        except Exception as exc:
            self.broken[ep.name] = (
                f"backend {ep.name!r} ({origin(ep)}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            )
            return
        if not isinstance(plugin, BackendPlugin):
            self.broken[ep.name] = (
                f"backend {ep.name!r} ({origin(ep)}) is not a kpng.dataplane.plugin."
                f"BackendPlugin: {plugin!r}"
            )
        elif plugin.name != ep.name:
            self.broken[ep.name] = (
                f"backend {ep.name!r} ({origin(ep)}) calls itself {plugin.name!r}"
            )
        else:
            self.plugins[ep.name] = plugin

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.plugins.keys() | self.broken.keys()))

    def describe(self) -> str:
        """For ``--backend``'s help: each name with its summary (or that it is broken)."""
        return "; ".join(
            f"{name}: {self.plugins[name].summary}" if name in self.plugins else f"{name}: broken"
            for name in self.names
        )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Each plugin's flags, in a group of its own; a plugin that fails here is broken."""
        for name, plugin in list(self.plugins.items()):
            group = p.add_argument_group(f"{name} backend", plugin.summary)
            try:
                plugin.add_arguments(group)
            except Exception as exc:  # flags it added before failing stay, unused
                del self.plugins[name]
                self.broken[name] = (
                    f"backend {name!r} could not add its flags: {type(exc).__name__}: {exc}"
                )

    def get(self, name: str) -> BackendPlugin:
        if name in self.broken:
            raise PluginError(self.broken[name])
        if name not in self.plugins:
            raise PluginError(
                f"no backend {name!r} is installed (installed: {', '.join(self.names)})"
            )
        return self.plugins[name]

    def build(self, name: str, args: argparse.Namespace, node: str) -> Backend:
        """The backend; PluginError if it is broken or its factory fails (a
        BackendArgumentError, a usage error, passes through)."""
        plugin = self.get(name)
        try:
            return plugin.build(args, node)
        except BackendArgumentError:
            raise
        except Exception as exc:
            raise PluginError(
                f"backend {name!r} could not be built: {type(exc).__name__}: {exc}"
            ) from exc


def discover() -> Backends:
    """The plugins installed in this Python environment (and the built-in ones)."""
    return Backends(with_builtins(entry_points(group=ENTRY_POINT_GROUP)))


def cleanup(argv: list[str], backends: Backends) -> int:
    """``kpng-agent cleanup [--backend NAME] ARGS...``: the backend's cleanup command
    (nftables by default, kpng's only backend that leaves state on the node)."""
    p = argparse.ArgumentParser(prog="kpng-agent cleanup", add_help=False)
    p.add_argument("--backend", default="nftables", choices=backends.names)
    known, rest = p.parse_known_args(argv)
    try:
        plugin = backends.get(known.backend)
    except PluginError as exc:
        p.error(str(exc))
    if plugin.cleanup is None:
        print(f"backend {plugin.name!r} leaves nothing to clean up", file=sys.stderr)
        return 0
    return plugin.cleanup(rest)
