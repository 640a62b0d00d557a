"""What one template render may spend: bounded operators, filters, concatenation and loops, refused before the work."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from jinja2.environment import Environment
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
# A backstop for work the bounds above do not price (comparing or slicing long values in a loop): CPU time
# of the rendering thread (not wall time, so a busy machine does not fail good templates), checked every
# few loop iterations and charges.
MAX_RENDER_SECONDS = 0.5
_CHECK_EVERY = 64


class TemplateBudgetError(SecurityError):
    """An operation would exceed one of the bounds above (raised before the operation runs)."""


def deadline() -> float:
    """The thread CPU time at which a render starting now must have ended."""
    return time.thread_time() + MAX_RENDER_SECONDS


@dataclass(slots=True)
class Budget:
    ends_at: float = field(default_factory=deadline)
    work: int = 0
    iterations: int = 0
    ticks: int = 0

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise TemplateBudgetError(f"the template does more than {MAX_WORK} characters of work")
        self._in_time()

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise TemplateBudgetError(f"the template runs more than {MAX_ITERATIONS} loop iterations")
        self._in_time()

    def _in_time(self) -> None:
        self.ticks += 1
        if self.ticks % _CHECK_EVERY == 0 and time.thread_time() > self.ends_at:
            raise TemplateBudgetError(f"the template takes more than {MAX_RENDER_SECONDS} s to render")


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


def measure(value: object) -> int:
    """An upper bound of len(str(value)), found without building it: `[s] * 1000` is a small list whose
    text is a thousand copies of s. Walking a container costs its length, so callers charge the result."""
    if isinstance(value, str):
        return len(value)
    return _nested(value)


def _nested(value: object) -> int:
    if isinstance(value, str):
        return 10 * len(value) + 12  # repr inside a container: quotes, escapes (\U0001…), Markup('…')
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2  # at least the decimal digits and the sign
    if isinstance(value, float):
        return 24
    if isinstance(value, (list, tuple, set, frozenset)):
        return 2 + sum(_nested(item) + 2 for item in value)
    if isinstance(value, dict):
        return 2 + sum(_nested(key) + _nested(item) + 4 for key, item in value.items())
    return 64  # records, undefined values and the like print short or refuse to print


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
            _value_bound(measure(seq) * max(count, 0), "*")  # type: ignore[call-overload]


def _check_add(left: object, right: object) -> None:
    if _is_sequence(left) and _is_sequence(right):
        _value_bound(measure(left) + measure(right), "+")


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
    _value_bound(len(template) + padding + sum(measure(v) for v in values), "%")


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
    _budget().charge(measure(result))
    return result


@pass_eval_context
def bounded_concat(eval_ctx: EvalContext, parts: tuple[Any, ...]) -> str:
    """`a ~ b ~ c`: sized before joining, so `{% set s = s ~ s %}` cannot double its way to gigabytes."""
    size = sum(measure(part) for part in parts)
    _value_bound(size, "~")
    _budget().charge(size)
    return markup_join(parts) if eval_ctx.autoescape else str_join(parts)


def bounded_finalize(value: Any) -> Any:
    """Every `{{ … }}` output passes here before Jinja turns it into text: a short list of references to one
    long string would otherwise become gigabytes of text before the output limit could see it."""
    if not isinstance(value, str):
        size = measure(value)
        _value_bound(size, "printing a value")
        _budget().charge(size)
    return value


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
    # join(eval_ctx, value, d="", attribute=None)
    value = args[1]
    separator = args[2] if len(args) > 2 else kwargs.get("d", "")
    if isinstance(value, str):  # joins its characters: sized without walking them
        count, size = len(value), len(value)
    else:
        # Anything else is materialised (a generator is walked once, each item a loop iteration) and sized.
        args[1] = items = list(value) if isinstance(value, (list, tuple)) else _items(value)
        count, size = len(items), sum(measure(item) for item in items)
    _value_bound(size + measure(separator) * max(count - 1, 0), "join")


def _check_replace(args: list[Any], kwargs: dict[str, Any]) -> None:
    # replace(eval_ctx, s, old, new, count=None)
    for value in args[1:4]:
        _value_bound(measure(value), "replace")
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


# Filters that count, pick or convert numbers without turning their input into text (join sizes its own).
_NON_TEXT_FILTERS = frozenset(
    {"length", "count", "first", "last", "default", "d", "join", "abs", "int", "float", "round"}
)


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """The filter with its size check (if it can multiply its input) and its result charged."""
    check = _FILTER_CHECKS.get(name)
    reads_text = name not in _NON_TEXT_FILTERS

    @functools.wraps(func)  # keeps jinja_pass_arg, so eval_ctx/environment are still passed
    def bounded(*args: Any, **kwargs: Any) -> Any:
        arguments = list(args)
        # Most filters turn their input into text first: size it (and pay for reading it) before they do.
        if reads_text:
            value = next((a for a in arguments if not isinstance(a, (EvalContext, Environment))), None)
            size = measure(value)
            _value_bound(size, name)
            _budget().charge(size)
        if check is not None:
            check(arguments, kwargs)
        result = func(*arguments, **kwargs)
        _budget().charge(measure(result))
        return result

    return bounded
