"""A small Go text/template + Helm renderer, enough for deploy/helm/kpng (no helm binary here).

It supports what the chart uses: ``{{- -}}`` trimming, comments, ``if``/``else if``/``else``,
``with``, ``range``, ``define``/``include``/``template``, ``$var :=``, pipelines, parentheses,
and the Sprig/Helm functions listed in ``FUNCS``. It is strict where Helm is lenient: a missing
map key or an unknown function raises, so a typo in a template's ``.Values`` path fails the
tests instead of rendering an empty string.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# lexing


_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)


def lex(text: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", body)], with the trim markers applied."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(text):
        chunk = text[pos : m.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(("text", chunk))
        out.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    chunk = text[pos:]
    out.append(("text", chunk.lstrip() if trim_next else chunk))
    return out


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op>:=|=|\||\(|\))
      | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
      | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    expr = expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise TemplateError(f"cannot tokenize {expr[pos:]!r} in {expr!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(expr) and expr[pos].isspace():
            pos += 1
    return out


# ---------------------------------------------------------------------------------------------
# parsing


@dataclass
class Node:
    kind: str  # text, action, if, with, range, template, define
    arg: Any = None
    body: list[Node] = field(default_factory=list)
    branches: list[tuple[Any, list[Node]]] = field(default_factory=list)
    orelse: list[Node] = field(default_factory=list)


def parse(text: str, defines: dict[str, list[Node]]) -> list[Node]:
    items = lex(text)
    pos = 0

    def block(stop: tuple[str, ...]) -> tuple[list[Node], str]:
        nonlocal pos
        nodes: list[Node] = []
        while pos < len(items):
            kind, body = items[pos]
            pos += 1
            if kind == "text":
                if body:
                    nodes.append(Node("text", body))
                continue
            if body.startswith("/*"):
                continue
            word = body.split(None, 1)[0] if body else ""
            rest = body[len(word) :].strip()
            if word in stop:
                return nodes, body
            if word in ("if", "with", "range"):
                node = Node(word)
                cond: Any = rest
                while True:
                    inner, ended = block(("else", "end"))
                    node.branches.append((cond, inner))
                    if ended == "end":
                        break
                    tail = ended[len("else") :].strip()
                    if tail.startswith("if "):
                        cond = tail[3:].strip()
                        continue
                    node.orelse, ended = block(("end",))
                    break
                nodes.append(node)
            elif word == "define":
                name = json.loads(rest)
                inner, _ = block(("end",))
                defines[name] = inner
            elif word == "template":
                nodes.append(Node("template", rest))
            elif word in ("end", "else"):
                raise TemplateError(f"unexpected {{{{ {body} }}}}")
            else:
                nodes.append(Node("action", body))
        if stop:
            raise TemplateError(f"missing {{{{ end }}}} (wanted one of {stop})")
        return nodes, ""

    nodes, _ = block(())
    return nodes


# ---------------------------------------------------------------------------------------------
# values


def truthy(v: Any) -> bool:
    return bool(v) if v is not None else False


def go_str(v: Any) -> str:
    if v is None:
        return ""  # Helm turns "<no value>" into ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    if isinstance(v, (dict, list)):
        raise TemplateError(f"printing a {type(v).__name__}: {v!r} (use toYaml)")
    return str(v)


def printf(fmt: str, *args: Any) -> str:
    it = iter(args)

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        return go_str(next(it))

    return re.sub(r"%[svdq%]", sub, fmt)


def to_yaml(v: Any) -> str:
    if v is None or v == {} or v == []:
        return "{}" if v != [] else "[]"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def indent(n: int, s: str) -> str:
    pad = " " * n
    return "\n".join(pad + line for line in s.split("\n"))


def required(msg: str, v: Any) -> Any:
    if not truthy(v):
        raise TemplateError(f"required: {msg}")
    return v


def index(m: Any, *keys: Any) -> Any:
    for k in keys:
        m = None if m is None else m.get(k) if isinstance(m, Mapping) else m[k]
    return m


def _and(*args: Any) -> Any:
    for a in args:
        if not truthy(a):
            return a
    return args[-1]


def _or(*args: Any) -> Any:
    for a in args:
        if truthy(a):
            return a
    return args[-1]


FUNCS: dict[str, Callable[..., Any]] = {
    "default": lambda d, v=None: v if truthy(v) else d,
    "trunc": lambda n, s: s[:n],
    "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
    "printf": printf,
    "replace": lambda old, new, s: s.replace(old, new),
    "contains": lambda sub, s: sub in s,
    "quote": lambda *v: " ".join(json.dumps(go_str(x)) for x in v),
    "toYaml": to_yaml,
    "nindent": lambda n, s: "\n" + indent(n, s),
    "indent": indent,
    "required": required,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "not": lambda a: not truthy(a),
    "and": _and,
    "or": _or,
    "index": index,
    "lookup": lambda api, kind, ns, name: {},  # as `helm template`: no cluster
    "randAlphaNum": lambda n: "x" * n,
    "b64enc": lambda s: base64.b64encode(s.encode()).decode(),
    "until": lambda n: list(range(n)),
    "int": int,
    "gt": lambda a, b: a > b,
}


# ---------------------------------------------------------------------------------------------
# evaluation


class Renderer:
    def __init__(self, root: Mapping[str, Any], defines: dict[str, list[Node]]) -> None:
        self.root = root
        self.defines = defines

    def render(self, nodes: list[Node], dot: Any, scope: dict[str, Any]) -> str:
        out: list[str] = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.arg)
            elif node.kind == "action":
                value = self.pipeline(node.arg, dot, scope, assign=True)
                if value is not _ASSIGNED:
                    out.append(go_str(value))
            elif node.kind == "template":
                toks = tokens(node.arg)
                name = json.loads(toks[0][1])
                arg = self.operand(toks[1:], dot, scope) if len(toks) > 1 else None
                out.append(self.include(name, arg))
            elif node.kind in ("if", "with"):
                out.append(self.conditional(node, dot, scope))
            elif node.kind == "range":
                out.append(self.range(node, dot, scope))
        return "".join(out)

    def include(self, name: str, dot: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"no template {name!r}")
        return self.render(self.defines[name], dot, {"$": self.root})

    def conditional(self, node: Node, dot: Any, scope: dict[str, Any]) -> str:
        for cond, body in node.branches:
            value = self.pipeline(cond, dot, scope)
            if truthy(value):
                inner = dict(scope)
                return self.render(body, value if node.kind == "with" else dot, inner)
        return self.render(node.orelse, dot, dict(scope))

    def range(self, node: Node, dot: Any, scope: dict[str, Any]) -> str:
        ((expr, body),) = node.branches
        names: list[str] = []
        m = re.match(r"^(\$\w+)(?:\s*,\s*(\$\w+))?\s*:=\s*(.*)$", expr, re.DOTALL)
        if m:
            names = [n for n in (m.group(1), m.group(2)) if n]
            expr = m.group(3)
        value = self.pipeline(expr, dot, scope)
        if isinstance(value, Mapping):
            pairs: list[tuple[Any, Any]] = [(k, value[k]) for k in sorted(value)]
        else:
            pairs = list(enumerate(value or []))
        if not pairs:
            return self.render(node.orelse, dot, dict(scope))
        out = []
        for k, v in pairs:
            inner = dict(scope)
            if len(names) == 1:
                inner[names[0]] = v
            elif len(names) == 2:
                inner[names[0]], inner[names[1]] = k, v
            out.append(self.render(body, v, inner))
        return "".join(out)

    def pipeline(self, expr: str, dot: Any, scope: dict[str, Any], assign: bool = False) -> Any:
        toks = tokens(expr)
        if assign and len(toks) > 2 and toks[0][0] == "var" and toks[1][1] in (":=", "="):
            scope[toks[0][1]] = self.eval_tokens(toks[2:], dot, scope)
            return _ASSIGNED
        return self.eval_tokens(toks, dot, scope)

    def eval_tokens(self, toks: list[tuple[str, str]], dot: Any, scope: dict[str, Any]) -> Any:
        commands: list[list[tuple[str, str]]] = [[]]
        depth = 0
        for t in toks:
            if t == ("op", "(") or t == ("op", ")"):
                depth += 1 if t[1] == "(" else -1
            if t == ("op", "|") and depth == 0:
                commands.append([])
            else:
                commands[-1].append(t)
        value: Any = _NOTHING
        for cmd in commands:
            value = self.command(cmd, dot, scope, value)
        return value

    def command(
        self, cmd: list[tuple[str, str]], dot: Any, scope: dict[str, Any], piped: Any
    ) -> Any:
        if not cmd:
            raise TemplateError("empty command")
        operands = list(self.split_operands(cmd))
        head = operands[0]
        if len(head) == 1 and head[0][0] == "ident" and head[0][1] not in ("true", "false", "nil"):
            name = head[0][1]
            if name == "include":
                args = [self.operand(o, dot, scope) for o in operands[1:]]
                if piped is not _NOTHING:
                    args.append(piped)
                return self.include(*args)
            if name not in FUNCS:
                raise TemplateError(f"unknown function {name!r}")
            args = [self.operand(o, dot, scope) for o in operands[1:]]
            if piped is not _NOTHING:
                args.append(piped)
            return FUNCS[name](*args)
        if len(operands) != 1 or piped is not _NOTHING:
            raise TemplateError(f"cannot call a non-function: {cmd}")
        return self.operand(head, dot, scope)

    @staticmethod
    def split_operands(cmd: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
        i = 0
        while i < len(cmd):
            if cmd[i] == ("op", "("):
                depth, j = 0, i
                while True:
                    depth += {"(": 1, ")": -1}.get(cmd[j][1], 0) if cmd[j][0] == "op" else 0
                    if depth == 0:
                        break
                    j += 1
                yield cmd[i : j + 1]
                i = j + 1
            else:
                yield [cmd[i]]
                i += 1

    def operand(self, toks: list[tuple[str, str]], dot: Any, scope: dict[str, Any]) -> Any:
        if toks[0] == ("op", "("):
            return self.eval_tokens(toks[1:-1], dot, scope)
        ((kind, text),) = toks
        if kind == "str":
            return json.loads(text)
        if kind == "raw":
            return text[1:-1]
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "ident":
            return {"true": True, "false": False, "nil": None}[text]
        if kind == "field":
            return self.walk(dot, text.split(".")[1:] if text != "." else [])
        if kind == "var":
            name, *path = text.split(".")
            if name not in scope:
                raise TemplateError(f"undefined variable {name}")
            return self.walk(scope[name], path)
        raise TemplateError(f"unexpected {text!r}")

    @staticmethod
    def walk(value: Any, path: list[str]) -> Any:
        for i, key in enumerate(path):
            if not isinstance(value, Mapping) or key not in value:
                where = "." + ".".join(path[: i + 1])
                raise TemplateError(f"no value at {where} (in {type(value).__name__})")
            value = value[key]
        return value


_ASSIGNED = object()
_NOTHING = object()


# ---------------------------------------------------------------------------------------------
# the chart


def merge(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = merge(base.get(k), v)
        return out
    return override


def render_chart(
    chart_dir: Path,
    overrides: Mapping[str, Any] | None = None,
    release: str = "kpng",
    namespace: str = "kube-system",
) -> dict[str, str]:
    """Every template of the chart (not the helpers), rendered: {file name: text}."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    values = merge(yaml.safe_load((chart_dir / "values.yaml").read_text()), overrides or {})
    root = {
        "Values": values,
        "Chart": {
            "Name": chart["name"],
            "Version": chart["version"],
            "AppVersion": chart.get("appVersion", ""),
        },
        "Release": {
            "Name": release,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": True,
            "IsUpgrade": False,
        },
    }
    defines: dict[str, list[Node]] = {}
    parsed: dict[str, list[Node]] = {}
    files = sorted((chart_dir / "templates").iterdir(), key=lambda p: (p.name[0] != "_", p.name))
    for path in files:
        nodes = parse(path.read_text(), defines)
        if not path.name.startswith("_"):
            parsed[path.name] = nodes
    renderer = Renderer(root, defines)
    return {name: renderer.render(nodes, root, {"$": root}) for name, nodes in parsed.items()}


def manifests(rendered: Mapping[str, str]) -> list[dict[str, Any]]:
    """The Kubernetes objects of the rendered YAML templates."""
    out = []
    for name, text in rendered.items():
        if not name.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                out.append(doc)
    return out
