"""Settings from a file and the environment under every program's flags.

Each program's flags are its whole configuration; a ``--config FILE`` (YAML) and ``KPNG_*``
environment variables only change their defaults. For the flag ``--NAME``:

- the file's key is ``NAME`` (``metrics-bind-address: 127.0.0.1:9100``); a list is joined
  with commas (``cluster-cidr: [10.0.0.0/16, fd00::/64]``), a switch takes true or false;
- the environment variable is ``KPNG_`` and ``NAME`` in upper snake case
  (``KPNG_METRICS_BIND_ADDRESS``);
- precedence, lowest first: the flag's own default, the file, the environment, the command
  line.

Every value goes through the flag's own argparse type and choices, so a bad one is refused
with the flag's message, naming the file or the variable it came from. A file may instead be
another program's configuration that a translation turns into flag keys (the agent reads
kube-proxy's ``KubeProxyConfiguration``); ``kind`` selects it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

# a foreign document (its ``kind`` selects it) -> flag keys and values
Translation = Callable[[Mapping[str, Any]], dict[str, Any]]

_NOT_SETTINGS = ("help", "version", "config")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


class ConfigError(ValueError):
    """A setting that cannot be used; the message names where it came from."""


def env_name(flag: str) -> str:
    """``--metrics-bind-address`` -> ``KPNG_METRICS_BIND_ADDRESS``."""
    return "KPNG_" + flag.removeprefix("--").replace("-", "_").upper()


def package_version() -> str:
    try:
        return metadata.version("kpng")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def add_version_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="read flags from this YAML file (keys: the flags' names without '--'); "
        "KPNG_* variables and the command line override it (also KPNG_CONFIG)",
    )
    add_version_argument(parser)


def parse_args(
    parser: argparse.ArgumentParser,
    argv: list[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    translations: Mapping[str, Translation] | None = None,
) -> argparse.Namespace:
    """``parser.parse_args(argv)`` over the defaults that ``--config`` and the environment
    give; a bad setting is a usage error (exit 2)."""
    environ = os.environ if environ is None else environ
    path = _config_path(argv, environ)
    try:
        values = read_config(Path(path), translations or {}) if path else {}
        apply_settings(parser, values, path or "", environ)
    except ConfigError as exc:
        parser.error(str(exc))
    return parser.parse_args(argv)


def _config_path(argv: list[str] | None, environ: Mapping[str, str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    path: str | None = known.config or environ.get(env_name("--config")) or None
    return path


def read_config(path: Path, translations: Mapping[str, Translation]) -> dict[str, Any]:
    """The file's settings by flag name (a ``kind`` the program knows is translated)."""
    # imported here: the services' extras bring PyYAML; the `kpng` CLI, which reads no file,
    # runs on the base install
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"--config {path}: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"--config {path}: expected a mapping of flag names to values")
    if "kind" not in doc:
        return doc
    translate = translations.get(str(doc["kind"]))
    if translate is None:
        known = ", ".join(sorted(translations)) or "none"
        raise ConfigError(f"--config {path}: kind {doc['kind']!r} is not read here ({known} is)")
    try:
        return translate(doc)
    except ConfigError as exc:
        raise ConfigError(f"--config {path}: {exc}") from None


def apply_settings(
    parser: argparse.ArgumentParser,
    values: Mapping[str, Any],
    source: str,
    environ: Mapping[str, str],
) -> None:
    """Sets the defaults of ``parser``'s flags from ``values`` (a file's, named ``source``)
    and ``environ`` (which wins); a flag so given is no longer required."""
    actions = _settable(parser)
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise ConfigError(
            f"--config {source}: unknown key(s) {', '.join(unknown)} (the keys are the flags' "
            "names without '--'; see --help)"
        )
    for name, action in actions.items():
        variable = env_name(name)
        if variable in environ:
            value: Any = environ[variable]
            where = f"${variable}"
        elif values.get(name) is not None:
            value, where = values[name], f"--config {source}"
        else:
            continue
        parser.set_defaults(**{action.dest: convert(action, value, where)})
        action.required = False


def _settable(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        option[2:]: action
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and action.dest not in _NOT_SETTINGS
    }


def convert(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` (from YAML or the environment) as the command line would give it."""
    flag = next(o for o in action.option_strings if o.startswith("--"))  # its first long name
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        on = _switch(value, where, flag)
        return on if isinstance(action, argparse._StoreTrueAction) else not on
    if action.nargs == 0:
        raise ConfigError(f"{where}: {flag} cannot be set from a file or the environment")
    if isinstance(value, dict):
        raise ConfigError(f"{where}: {flag}: expected a value, not a mapping")
    text = _text(value)
    converted: Any = text
    if action.type is not None and callable(action.type):
        try:
            converted = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {flag}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise ConfigError(f"{where}: {flag}: {text!r} is not one of {choices}")
    return converted


def _switch(value: Any, where: str, flag: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{where}: {flag}: {value!r} is not true or false")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_text(v) for v in value)
    return str(value)
