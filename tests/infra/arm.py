"""A small reader of ARM template expressions, enough to check ``infra/main.json`` without Azure.

Not an ARM engine: it parses ``[...]`` expressions, evaluates the functions the template uses
(``parameters``, ``variables``, ``format``, ``resourceId``, ``guid``, ``if``...) against given
parameter values and a fake subscription/resource group, and expands ``copy`` loops and
``condition``s, so the tests can assert on the values Azure would compute. ``reference()``
evaluates to a :class:`Ref` (which resource, which property path): runtime values stay symbolic.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUBSCRIPTION_ID = "00000000-0000-0000-0000-00000000aaaa"
TENANT_ID = "00000000-0000-0000-0000-00000000bbbb"
RESOURCE_GROUP = "rg-headwater"
RG_LOCATION = "westeurope"
RG_ID = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{RESOURCE_GROUP}"

# ---- parsing --------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[().,\[\]]))"
)


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Prop:
    target: Any
    name: str


@dataclass(frozen=True)
class Index:
    target: Any
    index: Any


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise SyntaxError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise SyntaxError(f"expected {value!r} at token {self.i} of {self.text!r}")
        self.i += 1
        return tok

    def expr(self) -> Any:
        kind, val = self.take()
        if kind == "str":
            node: Any = Lit(val[1:-1].replace("''", "'"))
        elif kind == "num":
            node = Lit(int(val))
        elif kind == "name":
            self.take("(")
            args = []
            if self.peek() != ("punct", ")"):
                args.append(self.expr())
                while self.peek() == ("punct", ","):
                    self.take(",")
                    args.append(self.expr())
            self.take(")")
            node = Call(val, tuple(args))
        else:
            raise SyntaxError(f"unexpected {val!r} in {self.text!r}")
        while self.peek() in (("punct", "."), ("punct", "[")):
            if self.take()[1] == ".":
                node = Prop(node, self.take()[1])
            else:
                node = Index(node, self.expr())
                self.take("]")
        return node


def is_expression(value: Any) -> bool:
    """Whether a template string is an expression (``[...]``, not the ``[[`` escape)."""
    return (
        isinstance(value, str)
        and value.startswith("[")
        and not value.startswith("[[")
        and value.endswith("]")
    )


def parse(expression: str) -> Any:
    """The syntax tree of one template expression string (with its brackets)."""
    p = _Parser(expression[1:-1])
    node = p.expr()
    if p.peek() is not None:
        raise SyntaxError(f"trailing tokens in {expression!r}")
    return node


def walk(node: Any) -> Iterator[Any]:
    """Every node of a syntax tree."""
    yield node
    if isinstance(node, Call):
        for a in node.args:
            yield from walk(a)
    elif isinstance(node, Prop):
        yield from walk(node.target)
    elif isinstance(node, Index):
        yield from walk(node.target)
        yield from walk(node.index)


def strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, with its path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")


def expressions(template: dict) -> Iterator[tuple[str, Any]]:
    """Every expression in the template, parsed, with its path."""
    for path, s in strings(template):
        if is_expression(s):
            yield path, parse(s)


# ---- evaluation -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """``reference(resource_id, ...)`` and a property path on it: a value known only at deploy time."""

    resource_id: str
    path: tuple[str, ...] = ()

    def get(self, name: str) -> Ref:
        return Ref(self.resource_id, (*self.path, name))

    def __str__(self) -> str:
        return f"<reference({self.resource_id}).{'.'.join(self.path)}>"


def resource_id(scope: str, type_: str, names: list[str]) -> str:
    """``{scope}/providers/{ns}/{type1}/{name1}/{type2}/{name2}...`` as ARM builds resource ids."""
    ns, *types = type_.split("/")
    if len(types) != len(names):
        raise ValueError(f"{type_} needs {len(types)} names, got {names}")
    parts = [f"{t}/{n}" for t, n in zip(types, names, strict=True)]
    return f"{scope}/providers/{ns}/{'/'.join(parts)}"


def unique_string(*args: str) -> str:
    digest = hashlib.sha256("|".join(args).encode()).digest()
    return base64.b32encode(digest).decode().lower()[:13]


def _falsy_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _format(fmt: str, *args: Any) -> str:
    def one(m: re.Match) -> str:
        v = args[int(m.group(1))]
        if isinstance(v, bool):
            return "True" if v else "False"
        return str(v)

    return re.sub(r"\{(\d+)\}", one, fmt)


@dataclass
class Evaluator:
    """Evaluates the template's expressions for one set of parameter values."""

    template: dict
    parameters: dict[str, Any] = field(default_factory=dict)
    _vars: dict[str, Any] = field(default_factory=dict)
    _resolving: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        declared = self.template.get("parameters", {})
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise KeyError(f"parameters not declared by the template: {sorted(unknown)}")
        values = {}
        for name, spec in declared.items():
            if name in self.parameters:
                values[name] = self.parameters[name]
            elif "defaultValue" in spec:
                values[name] = None  # evaluated below (a default may be an expression)
            else:
                raise KeyError(f"parameter {name!r} has no default: give it")
        self._param_values = values
        for name, spec in declared.items():
            if name not in self.parameters:
                self._param_values[name] = self.value(spec["defaultValue"])

    # -- values
    def value(self, v: Any, copy_index: int | None = None) -> Any:
        """A JSON value with every expression in it evaluated."""
        if is_expression(v):
            return self.eval(parse(v), copy_index)
        if isinstance(v, str) and v.startswith("[["):
            return v[1:]
        if isinstance(v, dict):
            return {k: self.value(x, copy_index) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x, copy_index) for x in v]
        return v

    def variable(self, name: str) -> Any:
        if name not in self._vars:
            variables = self.template.get("variables", {})
            if name not in variables:
                raise KeyError(f"variables({name!r}) is not defined")
            if name in self._resolving:
                raise RecursionError(f"variable {name!r} refers to itself")
            self._resolving.add(name)
            self._vars[name] = self.value(variables[name])
            self._resolving.discard(name)
        return self._vars[name]

    def eval(self, node: Any, copy_index: int | None = None) -> Any:
        if isinstance(node, Lit):
            return node.value
        if isinstance(node, Prop):
            target = self.eval(node.target, copy_index)
            if isinstance(target, Ref):
                return target.get(node.name)
            if not isinstance(target, dict) or node.name not in target:
                raise KeyError(f"no property {node.name!r} in {target!r}")
            return target[node.name]
        if isinstance(node, Index):
            target = self.eval(node.target, copy_index)
            index = self.eval(node.index, copy_index)
            if isinstance(target, Ref):
                return target.get(str(index))
            return target[index]
        assert isinstance(node, Call)
        name = node.name.lower()
        if name == "if":  # lazy, as ARM's
            cond = self.eval(node.args[0], copy_index)
            return self.eval(node.args[1] if cond else node.args[2], copy_index)
        args = [self.eval(a, copy_index) for a in node.args]
        return self._call(name, args, copy_index)

    def _call(self, name: str, a: list[Any], copy_index: int | None) -> Any:
        if name == "parameters":
            if a[0] not in self._param_values:
                raise KeyError(f"parameters({a[0]!r}) is not declared")
            return self._param_values[a[0]]
        if name == "variables":
            return self.variable(a[0])
        if name == "copyindex":
            if copy_index is None:
                raise ValueError("copyIndex() outside a copy loop")
            return copy_index + (a[0] if a and isinstance(a[0], int) else 0)
        simple = {
            "true": lambda: True,
            "false": lambda: False,
            "null": lambda: None,
            "tolower": lambda s: s.lower(),
            "toupper": lambda s: s.upper(),
            "equals": lambda x, y: x == y,
            "not": lambda x: not x,
            "and": lambda *xs: all(xs),
            "or": lambda *xs: any(xs),
            "empty": _falsy_empty,
            "length": len,
            "take": lambda x, n: x[:n],
            "concat": lambda *xs: (
                "".join(map(str, xs)) if all(isinstance(x, str) for x in xs) else sum(xs, [])
            ),
            "format": _format,
            "uniquestring": unique_string,
            "uricomponent": lambda s: urllib.parse.quote(str(s), safe=""),
            "createarray": lambda *xs: list(xs),
            "createobject": lambda *kv: dict(zip(kv[::2], kv[1::2], strict=True)),
            "guid": lambda *xs: str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(map(str, xs)))),
            "subscription": lambda: {
                "id": f"/subscriptions/{SUBSCRIPTION_ID}",
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
            },
            "resourcegroup": lambda: {"id": RG_ID, "name": RESOURCE_GROUP, "location": RG_LOCATION},
            "environment": lambda: {
                "name": "AzureCloud",
                "suffixes": {"storage": "core.windows.net", "keyvaultDns": ".vault.azure.net"},
            },
            "resourceid": lambda t, *ns: resource_id(RG_ID, t, list(ns)),
            "subscriptionresourceid": lambda t, *ns: resource_id(
                f"/subscriptions/{SUBSCRIPTION_ID}", t, list(ns)
            ),
            "extensionresourceid": lambda base, t, *ns: resource_id(base, t, list(ns)),
            "reference": lambda rid, *_: Ref(rid),
        }
        if name == "union":
            if all(isinstance(x, dict) for x in a):
                out: dict = {}
                for x in a:  # the last one wins on a duplicate key
                    out.update(x)
                return out
            out_list: list = []
            for x in a:
                out_list += [y for y in x if y not in out_list]
            return out_list
        if name not in simple:
            raise NotImplementedError(f"function {name}() is not known to this reader")
        return simple[name](*a)


# ---- the template's resources, as deployed ----------------------------------------------------


@dataclass
class Deployed:
    """One resource instance (a copy loop gives several) with its values evaluated."""

    type: str
    name: str
    id: str
    scope: str | None
    deployed: bool
    body: dict
    source: dict

    @property
    def properties(self) -> dict:
        return self.body.get("properties", {})


def scope_id(scope: str) -> str:
    """A ``scope`` property value as a full resource id (it may be relative: ``Microsoft.X/...``)."""
    if scope.startswith("/"):
        return scope
    return f"{RG_ID}/providers/{scope}"


def expand(ev: Evaluator) -> list[Deployed]:
    """Every resource instance of the template, with ``condition`` evaluated."""
    out = []
    for res in ev.template["resources"]:
        count = ev.value(res["copy"]["count"]) if "copy" in res else None
        for i in range(count) if count is not None else [None]:
            body = {k: ev.value(v, i) for k, v in res.items() if k not in ("copy",)}
            deployed = bool(body.get("condition", True))
            type_, name = body["type"], body["name"]
            scope = scope_id(body["scope"]) if "scope" in body else None
            if scope is not None:
                rid = resource_id(scope, type_, [name])
            else:
                rid = resource_id(RG_ID, type_, name.split("/"))
            out.append(Deployed(type_, name, rid, scope, deployed, body, res))
    return out


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
