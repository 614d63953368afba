"""The predicate language of ``bisect``: a small, safe expression over one state.

Hand-written tokenizer and recursive-descent parser; nothing is ever passed to ``eval``. The
grammar (also in ``docs/cli.md``)::

    expr       = or_expr ;
    or_expr    = and_expr { ( "or" | "||" ) and_expr } ;
    and_expr   = not_expr { ( "and" | "&&" ) not_expr } ;
    not_expr   = ( "not" | "!" ) not_expr | comparison ;
    comparison = operand [ compare_op operand ] ;
    compare_op = "==" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "matches" ;
    operand    = pointer | literal | call | "(" expr ")" ;
    call       = ( "len" | "exists" | "type" ) "(" operand ")" ;
    literal    = number | string | "true" | "false" | "null" ;
    pointer    = "/" { any character but blanks and ( ) = ! < > , " ' ` }
               | "`" JSON Pointer "`" ;
    string     = '"' JSON string body '"' | "'" characters without ' "'" ;
    number     = [ "-" ] JSON number ;

Semantics: a pointer is the value at that path in the state, or *missing*. A comparison with a
missing operand is false (``exists(/p)`` tests presence). Numbers compare as numbers (``1 ==
1.0``; booleans are not numbers), strings by code point; ``<``-style comparisons between other
types are false. ``a contains b``: substring of a string, element of an array, key of an
object. ``a matches "re"``: a Python regular expression found in the string ``a``. ``len`` is
the length of a string, array or object; ``type`` is ``"object"``, ``"array"``, ``"string"``,
``"number"``, ``"boolean"`` or ``"null"``. An operand alone is true unless it is missing,
``null``, ``false``, ``0``, ``""``, ``[]`` or ``{}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import delta
from ..errors import InvalidExpressionError, InvalidPointerError
from . import pointers
from .pointers import MISSING

__all__ = ["Predicate", "compile_predicate"]

MAX_LENGTH = 10_000
MAX_DEPTH = 64

_STOP = set(" \t\r\n()=!<>,\"'`&|")
_WORDS = {"and", "or", "not", "true", "false", "null", "contains", "matches", "len", "exists",
          "type"}
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


@dataclass(frozen=True)
class _Tok:
    kind: str  # op, word, pointer, string, number, end
    text: str
    pos: int
    value: Any = None


def _error(expr: str, pos: int, what: str, hint: str | None = None) -> InvalidExpressionError:
    shown = expr if len(expr) <= 80 else expr[:77] + "..."
    return InvalidExpressionError(
        f"bad expression: {what} at character {pos + 1} of {shown!r}", expression=expr,
        position=pos, hint=hint or "see 'agentjournal bisect --help' for the syntax, e.g. "
                                   "'len(/conversation_history) >= 100'")


def _tokens(expr: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in " \t\r\n":
            i += 1
            continue
        two = expr[i:i + 2]
        if two in ("==", "!=", "<=", ">=", "&&", "||"):
            out.append(_Tok("op", two, i))
            i += 2
        elif c in "()<>!,":
            out.append(_Tok("op", c, i))
            i += 1
        elif c == "/":
            j = i
            while j < n and expr[j] not in _STOP:
                j += 1
            out.append(_Tok("pointer", expr[i:j], i, _pointer(expr, i, expr[i:j])))
            i = j
        elif c == "`":
            j = expr.find("`", i + 1)
            if j < 0:
                raise _error(expr, i, "unterminated `pointer`")
            out.append(_Tok("pointer", expr[i:j + 1], i, _pointer(expr, i, expr[i + 1:j])))
            i = j + 1
        elif c == '"':
            j = i + 1
            while j < n and expr[j] != '"':
                j += 2 if expr[j] == "\\" else 1
            if j >= n:
                raise _error(expr, i, "unterminated string")
            try:
                value = json.loads(expr[i:j + 1])
            except ValueError:
                raise _error(expr, i, "bad escape in string") from None
            out.append(_Tok("string", expr[i:j + 1], i, value))
            i = j + 1
        elif c == "'":
            j = expr.find("'", i + 1)
            if j < 0:
                raise _error(expr, i, "unterminated string")
            out.append(_Tok("string", expr[i:j + 1], i, expr[i + 1:j]))
            i = j + 1
        elif c == "-" or c.isdigit():
            m = _NUMBER.match(expr, i)
            if m is None or (m.end() < n and (expr[m.end()].isalnum() or expr[m.end()] in "._")):
                raise _error(expr, i, "bad number")
            text = m.group()
            value = float(text) if any(ch in text for ch in ".eE") else int(text)
            out.append(_Tok("number", text, i, value))
            i = m.end()
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (expr[j].isalnum() or expr[j] == "_"):
                j += 1
            word = expr[i:j]
            if word not in _WORDS:
                raise _error(expr, i, f"unknown word {word!r}",
                             hint="paths start with '/', strings are quoted; words are and, or, "
                                  "not, contains, matches, len, exists, type, true, false, null")
            out.append(_Tok("word", word, i))
            i = j
        else:
            raise _error(expr, i, f"unexpected character {c!r}")
    out.append(_Tok("end", "", n))
    return out


def _pointer(expr: str, pos: int, text: str) -> list[str]:
    try:
        return pointers.parse(text)
    except InvalidPointerError as e:
        raise _error(expr, pos, f"bad pointer {text!r}", hint=e.hint) from None


# --- evaluation --------------------------------------------------------------------------

Fn = Callable[[Any], Any]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(a: Any, b: Any) -> bool:
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_eq(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _order(op: str) -> Callable[[Any, Any], bool]:
    def cmp(a: Any, b: Any) -> bool:
        if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
            return False
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    return cmp


def _contains(a: Any, b: Any) -> bool:
    if isinstance(a, str):
        return isinstance(b, str) and b in a
    if isinstance(a, list):
        return any(_eq(x, b) for x in a)
    if isinstance(a, dict):
        return isinstance(b, str) and b in a
    return False


def _truthy(v: Any) -> bool:
    return v is not MISSING and v is not None and v is not False and not (
        _is_num(v) and v == 0) and v not in ("", [], {})


def _type(v: Any) -> Any:
    if v is MISSING:
        return MISSING
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "boolean"
    if v is None:
        return "null"
    return "number"


def _len(v: Any) -> Any:
    return len(v) if isinstance(v, (str, list, dict)) else MISSING


def _or(a: Fn, b: Fn) -> Fn:
    def f(s: Any) -> bool:
        return _truthy(a(s)) or _truthy(b(s))
    return f


def _and(a: Fn, b: Fn) -> Fn:
    def f(s: Any) -> bool:
        return _truthy(a(s)) and _truthy(b(s))
    return f


def _not(a: Fn) -> Fn:
    def f(s: Any) -> bool:
        return not _truthy(a(s))
    return f


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _matches(rx: re.Pattern[str]) -> Callable[[Any, Any], bool]:
    def f(a: Any, _b: Any) -> bool:
        return isinstance(a, str) and rx.search(a) is not None
    return f


def _at(path: list[str]) -> Fn:
    def f(s: Any) -> Any:
        return pointers.lookup(s, path)
    return f


def _const(value: Any) -> Fn:
    def f(_s: Any) -> Any:
        return value
    return f


def _exists(a: Fn) -> Fn:
    def f(s: Any) -> bool:
        return a(s) is not MISSING
    return f


def _call(fn: Fn, a: Fn) -> Fn:
    def f(s: Any) -> Any:
        return fn(a(s))
    return f


@dataclass(frozen=True)
class _Node:
    fn: Fn
    kind: str  # pointer, literal, call, compare, logic
    pointer: tuple[str, ...] | None = None
    """For ``pointer`` and ``len(pointer)`` nodes: the path."""
    op: str = ""
    left: _Node | None = None
    right: _Node | None = None
    literal: Any = None


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.toks = _tokens(expr)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, *texts: str) -> bool:
        t = self.peek()
        return t.kind in ("op", "word") and t.text in texts

    def expect(self, text: str, after: str) -> None:
        t = self.peek()
        if not self.at(text):
            raise _error(self.expr, t.pos, f"expected {text!r} {after}, found "
                         + (repr(t.text) if t.kind != "end" else "the end"))
        self.take()

    def parse(self) -> _Node:
        node = self.or_expr()
        t = self.peek()
        if t.kind != "end":
            raise _error(self.expr, t.pos, f"unexpected {t.text!r}",
                         hint="combine conditions with 'and' / 'or'")
        return node

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.expr, self.peek().pos, "expression nested too deeply")

    def or_expr(self) -> _Node:
        node = self.and_expr()
        while self.at("or", "||"):
            self.take()
            right = self.and_expr()
            left = node
            node = _Node(_or(left.fn, right.fn), "logic", op="or", left=left, right=right)
        return node

    def and_expr(self) -> _Node:
        node = self.not_expr()
        while self.at("and", "&&"):
            self.take()
            right = self.not_expr()
            left = node
            node = _Node(_and(left.fn, right.fn), "logic", op="and", left=left, right=right)
        return node

    def not_expr(self) -> _Node:
        if self.at("not", "!"):
            self.take()
            self._nest()
            inner = self.not_expr()
            self.depth -= 1
            return _Node(_not(inner.fn), "logic", op="not", left=inner)
        return self.comparison()

    def comparison(self) -> _Node:
        left = self.operand()
        if not self.at("==", "!=", "<", "<=", ">", ">=", "contains", "matches"):
            return left
        op_tok = self.take()
        right = self.operand()
        op = op_tok.text
        if op == "matches":
            if right.kind != "literal" or not isinstance(right.literal, str):
                raise _error(self.expr, op_tok.pos, "'matches' needs a quoted regular "
                             "expression on its right")
            try:
                rx = re.compile(right.literal)
            except re.error as e:
                raise _error(self.expr, op_tok.pos, f"bad regular expression ({e})") from None
            test: Callable[[Any, Any], bool] = _matches(rx)
        elif op == "==":
            test = _eq
        elif op == "!=":
            test = _ne
        elif op == "contains":
            test = _contains
        else:
            test = _order(op)

        def fn(s: Any, a: Fn = left.fn, b: Fn = right.fn, t: Callable[[Any, Any], bool] = test
               ) -> bool:
            x, y = a(s), b(s)
            return x is not MISSING and y is not MISSING and t(x, y)

        return _Node(fn, "compare", op=op, left=left, right=right)

    def operand(self) -> _Node:
        t = self.take()
        if t.kind == "pointer":
            path = list(t.value)
            return _Node(_at(path), "pointer", pointer=tuple(path))
        if t.kind in ("string", "number"):
            return _Node(_const(t.value), "literal", literal=t.value)
        if t.kind == "word" and t.text in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[t.text]
            return _Node(_const(value), "literal", literal=value)
        if t.kind == "word" and t.text in ("len", "exists", "type"):
            self.expect("(", f"after {t.text}")
            self._nest()
            arg = self.operand()
            self.depth -= 1
            self.expect(")", f"after the argument of {t.text}")
            if t.text == "exists":
                if arg.kind != "pointer":
                    raise _error(self.expr, t.pos, "exists() takes a path, e.g. exists(/a/b)")
                return _Node(_exists(arg.fn), "call", op="exists", pointer=arg.pointer)
            return _Node(_call(_len if t.text == "len" else _type, arg.fn), "call", op=t.text,
                         pointer=arg.pointer)
        if t.kind == "op" and t.text == "(":
            self._nest()
            inner = self.or_expr()
            self.depth -= 1
            self.expect(")", "to close '('")
            return inner
        what = "the end" if t.kind == "end" else repr(t.text)
        raise _error(self.expr, t.pos, f"expected a path, a value or len/exists/type, found "
                     f"{what}")


@dataclass(frozen=True)
class Predicate:
    """A compiled predicate: call it on a state for True/False.

    Attributes:
        expression: the text it was compiled from.
        monotone_hint: the expression is a counter comparison (``P > n``, ``P >= n``,
            ``len(P) >= n`` or the same mirrored), which ``bisect`` assumes monotone by default.
        pointers: the paths it reads.
    """

    expression: str
    monotone_hint: bool
    pointers: tuple[str, ...]
    _fn: Fn

    def __call__(self, state: Any) -> bool:
        """Whether the predicate holds for ``state``."""
        return _truthy(self._fn(state))


def _counter_side(n: _Node) -> bool:
    return n.kind == "pointer" or (n.kind == "call" and n.op == "len" and n.pointer is not None)


def _monotone(n: _Node) -> bool:
    if n.kind != "compare" or n.left is None or n.right is None:
        return False
    num = n.right.kind == "literal" and _is_num(n.right.literal)
    if n.op in (">", ">=") and _counter_side(n.left) and num:
        return True
    num = n.left.kind == "literal" and _is_num(n.left.literal)
    return n.op in ("<", "<=") and _counter_side(n.right) and num


def _paths(n: _Node | None, out: list[str]) -> None:
    if n is None:
        return
    if n.pointer is not None:
        out.append(delta.pointer(n.pointer))
    _paths(n.left, out)
    _paths(n.right, out)


def compile_predicate(expression: str) -> Predicate:
    """Parse ``expression`` (grammar in this module's docstring) into a :class:`Predicate`.

    Raises:
        InvalidExpressionError: the expression does not parse; the message gives the
            character position.
    """
    if not isinstance(expression, str):
        raise InvalidExpressionError(f"an expression is a string, not "
                                     f"{type(expression).__name__}")
    if not expression.strip():
        raise _error(expression, 0, "empty expression")
    if len(expression) > MAX_LENGTH:
        raise _error(expression, MAX_LENGTH, f"expression longer than {MAX_LENGTH} characters")
    root = _Parser(expression).parse()
    paths: list[str] = []
    _paths(root, paths)
    return Predicate(expression, _monotone(root), tuple(dict.fromkeys(paths)), root.fn)
