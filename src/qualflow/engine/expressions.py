"""A small, safe expression language for conditions over a run's data.

Syntax is a subset of Python expressions, evaluated by walking the AST (never ``eval``)::

    values.QID1 >= 9 and labels.QID2 == "Yes"
    "vip" in lower(embedded.segment) or not empty(values.QID3_TEXT)
    len(steps.fetch.values) > 3

Allowed: literals (numbers, strings, True/False/None, also true/false/null), lists, names from
the run namespace (``values``, ``labels``, ``embedded``, ``response``, ``trigger``, ``steps``,
``run``), ``.field`` and ``[key]`` lookups (missing ones are ``None``), comparisons (also ``in``
/ ``not in``), ``and``/``or``/``not``, ``+ - * / %``, ``x if c else y`` and the functions in
:data:`FUNCTIONS`. Numbers compare with numeric strings (Qualtrics often sends "9").
Everything else (calls of other things, attributes starting with ``_``, lambdas, comprehensions,
``**``) is rejected when the expression is saved.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any

MAX_LENGTH = 2000
MAX_NODES = 300
MAX_STRING = 100_000


class ExpressionError(ValueError):
    """The expression is invalid, or cannot be evaluated over this data."""


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in value else number
    return None


def _empty(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, list | dict) and not value)


def _contains(haystack: Any, needle: Any) -> bool:
    if haystack is None:
        return False
    if isinstance(haystack, str):
        return str(needle) in haystack
    return needle in haystack


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": lambda v: 0 if v is None else len(v),
    "lower": lambda v: "" if v is None else str(v).lower(),
    "upper": lambda v: "" if v is None else str(v).upper(),
    "strip": lambda v: "" if v is None else str(v).strip(),
    "str": lambda v: "" if v is None else str(v),
    "number": _number,
    "int": lambda v: None if _number(v) is None else int(_number(v) or 0),
    "float": lambda v: None if _number(v) is None else float(_number(v) or 0),
    "empty": _empty,
    "contains": _contains,
    "startswith": lambda v, p: isinstance(v, str) and v.startswith(str(p)),
    "endswith": lambda v, p: isinstance(v, str) and v.endswith(str(p)),
    "any": lambda v: any(v or []),
    "all": lambda v: all(v or []),
}

_CONSTANT_NAMES = {"true": True, "false": False, "null": None, "none": None}

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}

_ARITH: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}

_ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Load, ast.Attribute, ast.Subscript,
    ast.Compare, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Call, ast.List, ast.Tuple, ast.IfExp, ast.In, ast.NotIn,
    *_COMPARE, *_ARITH,
)  # fmt: skip


class Expression:
    """A parsed, checked expression; evaluate it with :meth:`evaluate`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._tree = compile_expression(source)

    def evaluate(self, namespace: Mapping[str, Any]) -> Any:
        return _Evaluator(namespace).visit(self._tree.body)

    def holds(self, namespace: Mapping[str, Any]) -> bool:
        return bool(self.evaluate(namespace))


def compile_expression(source: str) -> ast.Expression:
    """Parse and check an expression, raising :class:`ExpressionError` with a clear reason."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    if len(source) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError("the expression is too complex")
    for node in nodes:
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in expressions")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ExpressionError(
                    "only these functions may be called: " + ", ".join(sorted(FUNCTIONS))
                )
            if node.keywords:
                raise ExpressionError("functions take positional arguments only")
    return tree


def _lookup(container: Any, key: Any) -> Any:
    if isinstance(container, Mapping):
        value = container.get(key)
        if value is None and not isinstance(key, str):
            value = container.get(str(key))
        return value
    if isinstance(container, list | tuple | str) and isinstance(key, int):
        return container[key] if -len(container) <= key < len(container) else None
    return None


def _coerce_pair(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, str) != isinstance(right, str):
        ln, rn = _number(left), _number(right)
        if ln is not None and rn is not None:
            return ln, rn
    return left, right


class _Evaluator:
    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace

    def visit(self, node: ast.AST) -> Any:
        method: Callable[[Any], Any] = getattr(self, f"visit_{type(node).__name__}")
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.namespace:
            return self.namespace[node.id]
        if node.id.lower() in _CONSTANT_NAMES:
            return _CONSTANT_NAMES[node.id.lower()]
        raise ExpressionError(
            f"unknown name {node.id!r}; known: " + ", ".join(sorted(self.namespace))
        )

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        return _lookup(self.visit(node.value), node.attr)

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        return _lookup(self.visit(node.value), self.visit(node.slice))

    def visit_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return [self.visit(e) for e in node.elts]

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.visit(operand)
            if isinstance(node.op, ast.And) and not value:
                return value
            if isinstance(node.op, ast.Or) and value:
                return value
        return value

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        number = _number(value)
        if number is None:
            raise ExpressionError(f"cannot negate {type(value).__name__}")
        return -number if isinstance(node.op, ast.USub) else number

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_Compare(self, node: ast.Compare) -> bool:
        left = self.visit(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.visit(comparator)
            if isinstance(op, ast.In | ast.NotIn):
                found = _contains(right, left)
                ok = found if isinstance(op, ast.In) else not found
            else:
                a, b = _coerce_pair(left, right)
                try:
                    ok = _COMPARE[type(op)](a, b)
                except TypeError:
                    if isinstance(op, ast.Eq | ast.NotEq):
                        ok = isinstance(op, ast.NotEq)
                    elif a is None or b is None:
                        ok = False
                    else:
                        raise ExpressionError(
                            f"cannot compare {type(a).__name__} with {type(b).__name__}"
                        ) from None
            if not ok:
                return False
            left = right
        return True

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Mult) and (
            isinstance(left, str | list) or isinstance(right, str | list)
        ):
            raise ExpressionError("repeating strings or lists is not allowed")
        if not (isinstance(left, str) and isinstance(right, str)):
            ln, rn = _number(left), _number(right)
            if ln is None or rn is None:
                raise ExpressionError(
                    f"cannot apply arithmetic to {type(left).__name__} and {type(right).__name__}"
                )
            left, right = ln, rn
        try:
            result = _ARITH[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        if isinstance(result, str) and len(result) > MAX_STRING:
            raise ExpressionError("string result too long")
        return result

    def visit_Call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        args = [self.visit(a) for a in node.args]
        try:
            return FUNCTIONS[node.func.id](*args)
        except TypeError as exc:
            raise ExpressionError(f"{node.func.id}(): {exc}") from None
