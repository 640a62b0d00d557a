"""The Jinja sandbox Herald renders in: vetted filters, budgeted operators, loops and `~`, no compile-time folding."""

from __future__ import annotations

import contextlib
from typing import Any

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from herald.templates.budget import (
    INTERCEPTED_BINOPS,
    MAX_ITERATIONS,
    Budget,
    TemplateBudgetError,
    bounded_binop,
    bounded_concat,
    bounded_filter,
    bounded_finalize,
    bounded_iter,
    spending,
)
from herald.templates.checks import ALLOWED_FILTERS, ALLOWED_TESTS


class BudgetedSandbox(ImmutableSandboxedEnvironment):
    """Operators that can multiply (`**`, `*`, `+`, `%`, `//`) go through `call_binop`, which sizes them first."""

    intercepted_binops = INTERCEPTED_BINOPS
    # Reached from compiled templates as `environment.herald_concat` / `environment.herald_loop` (see _Budgeted).
    herald_concat = staticmethod(bounded_concat)
    herald_loop = staticmethod(bounded_iter)

    def __init__(self, **options: Any) -> None:
        # optimized=False: Jinja's optimizer folds constants while compiling, i.e. it would run
        # `'a'|center(10**9)` or `'x' ~ …` at compile time, outside any budget. Nothing runs before render.
        super().__init__(optimized=False, finalize=bounded_finalize, **options)
        # No globals (range, cycler, lipsum, …) and only pure filters and tests: less to escape through.
        self.globals.clear()
        self.filters = {name: bounded_filter(name, self.filters[name]) for name in ALLOWED_FILTERS}
        self.tests = {name: self.tests[name] for name in ALLOWED_TESTS}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return bounded_binop(operator, left, right)


class _Budgeted(NodeTransformer):
    """Route `a ~ b` and every loop's iterable through the budget. Runs after vetting: user templates may not
    call anything, so these calls can only come from here."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call("herald_concat", nodes.Tuple(node.nodes, "load"), node)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call("herald_loop", node.iter, node)
        return node


def _call(name: str, argument: nodes.Node, where: nodes.Node) -> nodes.Call:
    call = nodes.Call(nodes.EnvironmentAttribute(name), [argument], [], None, None)
    call.set_lineno(where.lineno)
    if where.environment is not None:
        call.set_environment(where.environment)
    return call


def budget_tree(tree: nodes.Template) -> nodes.Template:
    """The vetted tree with `~` and loops budgeted (in place)."""
    return _Budgeted().visit(tree)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Compile-time probe: expressions built only from literals cost the same for every person, so
# `{{ 9**9999999 }}` is refused when the template is saved, not when the first message renders.


class _NotConstant(Exception):
    pass


def refused_constants(tree: nodes.Template, env: BudgetedSandbox) -> list[str]:
    """Why the template's constant expressions are over budget, evaluated with the render-time bounds."""
    seen: dict[int, object] = {}
    with spending(Budget()):
        try:
            for node in tree.find_all((nodes.BinExpr, nodes.UnaryExpr, nodes.Concat, nodes.Filter)):
                with contextlib.suppress(_NotConstant, TypeError, ValueError, ArithmeticError, LookupError):
                    _constant(node, env, seen)  # other failures are the render's to report, with the data
            _count_loops(tree, env, seen, outer=1, counted=[0])
        except TemplateBudgetError as exc:
            return [str(exc)]  # one over-budget expression is enough: the budget is spent
    return []


def _count_loops(
    node: nodes.Node, env: BudgetedSandbox, seen: dict[int, object], outer: int, counted: list[int]
) -> None:
    """Iterations of loops over literal sequences, nested loops multiplied; unknown lengths count as one."""
    for child in node.iter_child_nodes():
        if not isinstance(child, nodes.For):
            _count_loops(child, env, seen, outer, counted)
            continue
        try:
            length = len(_constant(child.iter, env, seen))
        except (_NotConstant, TypeError, ValueError, ArithmeticError, LookupError):
            length = 1
        counted[0] += outer * length
        if counted[0] > MAX_ITERATIONS:
            raise TemplateBudgetError(f"the template runs more than {MAX_ITERATIONS} loop iterations")
        _count_loops(child, env, seen, outer * max(length, 1), counted)


def _constant(node: nodes.Node, env: BudgetedSandbox, seen: dict[int, object]) -> Any:
    key = id(node)
    if key not in seen:
        try:
            seen[key] = _evaluate(node, env, seen)
        except _NotConstant:
            seen[key] = _NotConstant
        # Other errors (including over-budget) propagate and are not cached: they end the probe.
    if seen[key] is _NotConstant:
        raise _NotConstant
    return seen[key]


def _evaluate(node: nodes.Node, env: BudgetedSandbox, seen: dict[int, object]) -> Any:
    def const(child: nodes.Node) -> Any:
        return _constant(child, env, seen)

    if isinstance(node, nodes.Const):
        return node.value
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [const(item) for item in node.items]
        return items if isinstance(node, nodes.List) else tuple(items)
    if isinstance(node, nodes.BinExpr):
        left, right = const(node.left), const(node.right)
        if node.operator in INTERCEPTED_BINOPS:
            return bounded_binop(node.operator, left, right)
        return env.binop_table[node.operator](left, right)
    if isinstance(node, nodes.UnaryExpr):
        return env.unop_table[node.operator](const(node.node))
    if isinstance(node, nodes.Concat):
        return bounded_concat(nodes.EvalContext(env), tuple(const(part) for part in node.nodes))
    if isinstance(node, nodes.Filter) and node.node is not None and not (node.dyn_args or node.dyn_kwargs):
        func = env.filters.get(node.name)
        if func is None:
            raise _NotConstant
        args = [const(node.node), *(const(arg) for arg in node.args)]
        kwargs = {str(pair.key): const(pair.value) for pair in node.kwargs}
        passed = _PassArg.from_obj(func)
        if passed is _PassArg.eval_context:
            args.insert(0, nodes.EvalContext(env))
        elif passed is _PassArg.environment:
            args.insert(0, env)
        elif passed is _PassArg.context:
            raise _NotConstant
        return func(*args, **kwargs)
    raise _NotConstant
