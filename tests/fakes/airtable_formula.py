"""A small evaluator for Airtable formulas, for the local Airtable server.

It parses a formula the way Airtable does (string literals with backslash escapes,
``{Field}`` references, functions, ``&`` and comparisons) and evaluates it per
record. A formula that would not parse on Airtable raises FormulaError, so a test
catches a broken escape instead of matching everything by accident.

Supported: string and number literals, ``{Field}``, ``&``, ``= != < > <= >=``,
``( )`` and the functions OR, AND, NOT, IF, LOWER, UPPER, TRIM, FIND, SEARCH, LEN,
CONCATENATE, SUBSTITUTE, TRUE, FALSE, BLANK, RECORD_ID.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class FormulaError(ValueError):
    """The formula is not valid Airtable syntax (or uses something unsupported)."""


@dataclass(frozen=True)
class Token:
    kind: str  # str, num, field, name, op, end
    value: Any


_OPS = ("!=", "<=", ">=", "=", "<", ">", "&", "(", ")", ",")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            quote, i, out = ch, i + 1, []
            while True:
                if i >= len(text):
                    raise FormulaError("unterminated string literal")
                if text[i] == "\\" and i + 1 < len(text):
                    out.append(text[i + 1])
                    i += 2
                elif text[i] == quote:
                    i += 1
                    break
                else:
                    out.append(text[i])
                    i += 1
            tokens.append(Token("str", "".join(out)))
        elif ch == "{":
            end = text.find("}", i)
            if end < 0:
                raise FormulaError("unterminated field reference")
            tokens.append(Token("field", text[i + 1 : end]))
            i = end + 1
        elif m := _NUMBER.match(text, i):
            tokens.append(Token("num", float(m.group())))
            i = m.end()
        elif m := _NAME.match(text, i):
            tokens.append(Token("name", m.group().upper()))
            i = m.end()
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise FormulaError(f"unexpected character {ch!r} at {i}")
            tokens.append(Token("op", op))
            i += len(op)
    tokens.append(Token("end", None))
    return tokens


Node = Callable[[Mapping[str, Any], str], Any]  # (fields, record id) -> value


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(as_text(v) for v in value)
    return str(value)


def truthy(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value)
    return value not in (None, "", 0, False)


def _find(needle: Any, hay: Any, start: Any = 1, fold: bool = False) -> Any:
    n, h = as_text(needle), as_text(hay)
    if fold:
        n, h = n.lower(), h.lower()
    return h.find(n, max(int(start or 1) - 1, 0)) + 1


FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    # name: (min args, max args, implementation over evaluated args)
    "LOWER": (1, 1, lambda s: as_text(s).lower()),
    "UPPER": (1, 1, lambda s: as_text(s).upper()),
    "TRIM": (1, 1, lambda s: as_text(s).strip()),
    "LEN": (1, 1, lambda s: len(as_text(s))),
    "FIND": (2, 3, lambda n, h, s=1: _find(n, h, s)),
    "SEARCH": (2, 3, lambda n, h, s=1: _find(n, h, s, fold=True) or None),
    "CONCATENATE": (1, 99, lambda *a: "".join(as_text(x) for x in a)),
    "SUBSTITUTE": (3, 3, lambda s, a, b: as_text(s).replace(as_text(a), as_text(b))),
    "OR": (1, 999, lambda *a: any(truthy(x) for x in a)),
    "AND": (1, 999, lambda *a: all(truthy(x) for x in a)),
    "NOT": (1, 1, lambda x: not truthy(x)),
    "TRUE": (0, 0, lambda: True),
    "FALSE": (0, 0, lambda: False),
    "BLANK": (0, 0, lambda: None),
}


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, int | float) and isinstance(right, int | float):
        a, b = float(left), float(right)
    else:
        a, b = as_text(left), as_text(right)  # type: ignore[assignment]
    return {
        "=": a == b,
        "!=": a != b,
        "<": a < b,
        ">": a > b,
        "<=": a <= b,
        ">=": a >= b,
    }[op]


class _Parser:
    def __init__(self, text: str, known: set[str] | None) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.known = known

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self, kind: str, value: Any = None) -> Token:
        token = self.peek()
        if token.kind != kind or (value is not None and token.value != value):
            raise FormulaError(f"expected {value or kind}, found {token.value!r}")
        self.pos += 1
        return token

    def parse(self) -> Node:
        node = self.comparison()
        self.take("end")
        return node

    def comparison(self) -> Node:
        node = self.concat()
        while self.peek().kind == "op" and self.peek().value in (
            "=",
            "!=",
            "<",
            ">",
            "<=",
            ">=",
        ):
            op = self.take("op").value
            left, right = node, self.concat()
            node = lambda f, r, a=left, b=right, o=op: _compare(o, a(f, r), b(f, r))  # noqa: E731
        return node

    def concat(self) -> Node:
        node = self.primary()
        while self.peek() == Token("op", "&"):
            self.take("op", "&")
            left, right = node, self.primary()
            node = lambda f, r, a=left, b=right: as_text(a(f, r)) + as_text(b(f, r))  # noqa: E731
        return node

    def primary(self) -> Node:
        token = self.peek()
        if token.kind in ("str", "num"):
            self.pos += 1
            return lambda f, r, v=token.value: v
        if token.kind == "field":
            self.pos += 1
            if self.known is not None and token.value not in self.known:
                raise FormulaError(f"Unknown field names: {token.value.lower()}")
            return lambda f, r, name=token.value: f.get(name)
        if token == Token("op", "("):
            self.take("op", "(")
            node = self.comparison()
            self.take("op", ")")
            return node
        if token.kind == "name":
            self.pos += 1
            return self.call(token.value)
        raise FormulaError(f"unexpected {token.value!r}")

    def call(self, name: str) -> Node:
        self.take("op", "(")
        args: list[Node] = []
        if self.peek() != Token("op", ")"):
            args.append(self.comparison())
            while self.peek() == Token("op", ","):
                self.take("op", ",")
                args.append(self.comparison())
        self.take("op", ")")
        if name == "RECORD_ID" and not args:
            return lambda f, r: r
        if name == "IF" and len(args) in (2, 3):
            yes, no = args[1], args[2] if len(args) == 3 else (lambda f, r: None)
            cond = args[0]
            return lambda f, r: yes(f, r) if truthy(cond(f, r)) else no(f, r)
        if name not in FUNCTIONS:
            raise FormulaError(f"unknown function {name}")
        low, high, impl = FUNCTIONS[name]
        if not low <= len(args) <= high:
            raise FormulaError(f"{name} takes {low} to {high} arguments")
        return lambda f, r: impl(*(a(f, r) for a in args))


def compile_formula(text: str, known_fields: set[str] | None = None) -> Node:
    """Parse ``text``; the result evaluates it for (fields, record id). A field
    not in ``known_fields`` (when given) is an error, as on Airtable.
    Raises FormulaError."""
    return _Parser(text, known_fields).parse()
