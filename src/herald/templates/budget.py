"""What one template render may spend: bounded operators, filters, concatenation and loops, refused before the work."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import markup_join, str_join
from jinja2.utils import pass_eval_context

# Units are characters (or items) produced by template operations; a legitimate template spends a few
# thousand. Every bound is checked *before* Python allocates the result, so a refusal costs microseconds.
MAX_WORK = 2 * 1024 * 1024  # chars/items produced by operators, filters and `~` in one render of one part
MAX_VALUE = 1024 * 1024  # the largest single string or list an operation may build
MAX_INT_BITS = 4096  # about 1,200 decimal digits: no message needs a bigger number
MAX_ITERATIONS = 100_000  # loop iterations per render of one part (Jinja's own MAX_RANGE)


class TemplateBudgetError(SecurityError):
    """An operation would exceed one of the bounds above; the template, not the data, is at fault."""


@dataclass(slots=True)
class Budget:
    work: int = 0
    iterations: int = 0

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise TemplateBudgetError(f"the template does more than {MAX_WORK} characters of work")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise TemplateBudgetError(f"the template runs more than {MAX_ITERATIONS} loop iterations")


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("herald_template_budget", default=None)


@contextlib.contextmanager
def spending(budget: Budget) -> Iterator[Budget]:
    """Charge every bounded operation in this block (one render, or one compile-time probe) to `budget`."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def _budget() -> Budget:
    # Outside `spending` (never in Herald's own paths) each operation still gets a fresh, full budget.
    return _current.get() or Budget()


def _size(value: object) -> int:
    if isinstance(value, (str, bytes, list, tuple, dict)):
        return len(value)
    return 1


def _value_bound(size: float, what: str) -> None:
    if size > MAX_VALUE:
        raise TemplateBudgetError(f"{what} would build a value of more than {MAX_VALUE} characters")


def _is_int(value: object) -> bool:
    return isinstance(value, int)


def _is_sequence(value: object) -> bool:
    return isinstance(value, (str, list, tuple))


def _check_power(base: object, exponent: object) -> None:
    if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:  # type: ignore[operator,arg-type]
        bits = exponent * math.log2(abs(base))  # type: ignore[operator,arg-type]
        if bits > MAX_INT_BITS:
            raise TemplateBudgetError(f"** would build a number of more than {MAX_INT_BITS} bits")


def _check_multiply(left: object, right: object) -> None:
    if _is_int(left) and _is_int(right):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:  # type: ignore[attr-defined]
            raise TemplateBudgetError(f"* would build a number of more than {MAX_INT_BITS} bits")
        return
    for seq, count in ((left, right), (right, left)):
        if _is_sequence(seq) and _is_int(count):
            _value_bound(len(seq) * max(count, 0), "*")  # type: ignore[arg-type,call-overload]


def _check_add(left: object, right: object) -> None:
    if _is_sequence(left) and _is_sequence(right):
        _value_bound(len(left) + len(right), "+")  # type: ignore[arg-type]


# printf-style conversions: %(name)-08.3f. A `*` takes its width from the arguments.
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def _check_format(template: object, args: object) -> None:
    if not isinstance(template, str):
        return
    padding = 0
    for width, precision in _CONVERSION.findall(template):
        if "*" in (width, precision):
            raise TemplateBudgetError("% with a * width is not allowed")
        padding += int(width or 0) + int(precision or 0)
    values = args if isinstance(args, tuple) else (args,)
    _value_bound(len(template) + padding + sum(_size(v) for v in values), "%")


_BINOPS: dict[str, tuple[Callable[[Any, Any], Any], Callable[[object, object], None]]] = {
    "**": (operator.pow, _check_power),
    "*": (operator.mul, _check_multiply),
    "+": (operator.add, _check_add),
    "%": (operator.mod, _check_format),
    "//": (operator.floordiv, lambda _left, _right: None),
}
INTERCEPTED_BINOPS = frozenset(_BINOPS)


def bounded_binop(op: str, left: Any, right: Any) -> Any:
    """`left op right`, refused before it runs when its result would be out of bounds."""
    compute, check = _BINOPS[op]
    check(left, right)
    result = compute(left, right)
    _budget().charge(_size(result))
    return result


@pass_eval_context
def bounded_concat(eval_ctx: EvalContext, parts: tuple[Any, ...]) -> str:
    """`a ~ b ~ c`: sized before joining, so `{% set s = s ~ s %}` cannot double its way to gigabytes."""
    size = sum(len(part) if isinstance(part, str) else len(str(part)) for part in parts)
    _value_bound(size, "~")
    _budget().charge(size)
    return markup_join(parts) if eval_ctx.autoescape else str_join(parts)


def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """A loop's items, each one charged: nested loops over long sequences stop at MAX_ITERATIONS."""
    budget = _budget()
    for item in iterable:
        budget.iterate()
        yield item


# ---------------------------------------------------------------------------------------------
# Filters: the multiplicative ones are sized from their arguments first; every result is charged.


def _items(value: object) -> list[Any]:
    items = []
    budget = _budget()
    for item in value:  # type: ignore[attr-defined]
        budget.iterate()
        items.append(item)
    return items


def _check_join(args: list[Any], kwargs: dict[str, Any]) -> None:
    # join(eval_ctx, value, d="", attribute=None): value is materialised so it is sized once.
    args[1] = items = _items(args[1])
    separator = args[2] if len(args) > 2 else kwargs.get("d", "")
    size = sum(_size(item) if isinstance(item, str) else len(str(item)) for item in items)
    _value_bound(size + len(str(separator)) * max(len(items) - 1, 0), "join")


def _check_replace(args: list[Any], kwargs: dict[str, Any]) -> None:
    # replace(eval_ctx, s, old, new, count=None)
    text, old, new = (str(a) for a in args[1:4])
    count = args[4] if len(args) > 4 else kwargs.get("count")
    hits = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    _value_bound(len(text) + hits * max(len(new) - len(old), 0), "replace")


def _check_center(args: list[Any], kwargs: dict[str, Any]) -> None:
    # center(value, width=80)
    width = args[1] if len(args) > 1 else kwargs.get("width", 80)
    if isinstance(width, int):
        _value_bound(width, "center")


_FILTER_CHECKS: dict[str, Callable[[list[Any], dict[str, Any]], None]] = {
    "join": _check_join,
    "replace": _check_replace,
    "center": _check_center,
}


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter with its size check (if it can multiply its input) and its result charged."""
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(func)  # keeps jinja_pass_arg, so eval_ctx/environment are still passed
    def bounded(*args: Any, **kwargs: Any) -> Any:
        arguments = list(args)
        if check is not None:
            check(arguments, kwargs)
        result = func(*arguments, **kwargs)
        _budget().charge(_size(result))
        return result

    return bounded
