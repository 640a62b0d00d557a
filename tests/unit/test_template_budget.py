"""The renderer's budget: operators, filters, `~` and loops sized before they run; ordinary templates untouched."""

from __future__ import annotations

import time

import pytest

from herald.templates.budget import (
    MAX_ITERATIONS,
    MAX_RENDER_SECONDS,
    MAX_VALUE,
    Budget,
    TemplateBudgetError,
    bounded_binop,
    spending,
)
from herald.templates.render import (
    Held,
    Rendered,
    TemplateSpec,
    TemplateUnsafeError,
    compile_template,
    render_compiled,
    render_template,
)


def _render(source: str, values: dict[str, object] | None = None, part: str = "email.text") -> Rendered | Held:
    return render_template(TemplateSpec("t", 1, {part: source}), values or {})


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{{ 9**9999999 }}", "** would build a number"),
        ("{{ 99999999 * 'a' }}", "* would build a value"),
        ("{{ [1] * 10**9 }}", "* would build a value"),
        ("{{ 10**1000 * 10**1000 * 10**1000 * 10**1000 * 10**1000 }}", "* would build a number"),
        ("{{ 'a'|center(10**9) }}", "center would build"),
        ("{{ ('ab'*20000)|replace('', 'x'*20000) }}", "replace would build"),
        ("{{ ('x'*50000)|join('y'*50000) }}", "join would build"),
        ("{{ '%.999999999f' % 1.5 }}", "% would build"),
        ("{{ ('a'*600000) ~ ('b'*600000) }}", "~ would build"),
        ("{{ ('a'*600000) + ('b'*600000) }}", "+ would build"),
        ("{% for a in 'x'*400 %}{% for b in 'x'*400 %}{% endfor %}{% endfor %}", "loop iterations"),
        ("{% for a in [1,2,3] %}{% for b in 'x'*40000 %}{% endfor %}{% endfor %}", "loop iterations"),
    ],
)
def test_constant_bombs_are_refused_when_compiled_and_never_run(source: str, why: str) -> None:
    started = time.thread_time()  # CPU time: a loaded machine must not fail the test
    with pytest.raises(TemplateUnsafeError) as caught:
        compile_template(TemplateSpec("bomb", 1, {"sms.body": source}))
    assert why in caught.value.message
    assert caught.value.code == "template_unsafe" and caught.value.fields["part"] == "sms.body"
    assert time.thread_time() - started < 0.5


@pytest.mark.parametrize(
    ("source", "values", "why"),
    [
        ("{{ w * n }}", {"w": "ab", "n": 10**9}, "* would build a value"),
        ("{{ n ** n }}", {"n": 99999}, "** would build a number"),
        ("{% set s = w %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}", {"w": "abcdefgh"}, "~ would build"),
        ("{% for a in xs %}{% for b in xs %}{% for c in xs %}.{% endfor %}{% endfor %}{% endfor %}",
         {"xs": list(range(100))}, "loop iterations"),
        ("{{ xs|join(w) }}", {"xs": list(range(50000)), "w": "y" * 50}, "join would build"),
        # Short lists of references to one long string: tiny in memory, gigabytes once printed.
        ("{{ [w, w, w, w, w, w, w, w, w, w, w, w] }}", {"w": "y" * 100_000}, "printing a value would build"),
        ("{{ [w] * 1000 ~ '' }}", {"w": "y" * 100_000}, "* would build a value"),
        ("{{ [w, w, w, w, w, w, w, w, w, w, w, w] ~ '' }}", {"w": "y" * 100_000}, "~ would build"),
        ("{{ [w, w, w, w, w, w, w, w, w, w, w, w]|string }}", {"w": "y" * 100_000}, "string would build"),
        ("{{ '%s' % ([w, w, w, w, w, w, w, w, w, w, w, w],) }}", {"w": "y" * 100_000}, "% would build"),
        ("{% for x in xs %}{{ w|upper }}{% endfor %}", {"xs": list(range(100)), "w": "y" * 100_000}, "more than"),
    ],
)  # fmt: skip
def test_bombs_built_from_values_are_refused_at_render_time(source: str, values: dict[str, object], why: str) -> None:
    compile_template(TemplateSpec("bomb", 1, {"sms.body": source}))  # nothing constant to refuse
    started = time.thread_time()  # CPU time: a loaded machine must not fail the test
    with pytest.raises(TemplateUnsafeError) as caught:
        render_template(TemplateSpec("bomb", 1, {"sms.body": source}), values)
    assert why in caught.value.message
    assert time.thread_time() - started < 0.5


def test_work_the_bounds_do_not_price_stops_at_the_cpu_deadline() -> None:
    # Slicing a 1 MB string is allowed; doing it 50,000 times (50 GB of copying) is stopped by the deadline.
    source = "{% for a in xs %}{% if s[1:] %}{% endif %}{% endfor %}"
    values = {"xs": list(range(50_000)), "s": "y" * 1_000_000}
    compiled = compile_template(TemplateSpec("slow", 1, {"sms.body": source}))
    started = time.thread_time()
    with pytest.raises(TemplateUnsafeError) as caught:
        render_compiled(compiled, values)
    assert f"more than {MAX_RENDER_SECONDS} s to render" in caught.value.message
    assert time.thread_time() - started < MAX_RENDER_SECONDS + 1.0  # prepared values + the budget, not 5+ s


def test_the_budget_is_per_render_not_per_process() -> None:
    source = "{% for a in xs %}{{ a }}{% endfor %}"
    values = {"xs": list(range(MAX_ITERATIONS // 2))}
    for _ in range(3):  # each render spends half the loop budget; none inherits the last one's spending
        assert isinstance(_render(source, values), Rendered)


def test_ordinary_templates_render_as_before() -> None:
    values = {
        "contact": {"first_name": "ann"},
        "order": {"items": [{"name": "tea", "qty": 2, "price": 1.5}, {"name": "cake", "qty": 1, "price": 3.25}]},
    }
    source = (
        "Hi {{ contact.first_name|title }}!\n"
        "{% for item in order['items'] %}{{ loop.index }}/{{ loop.length }} {{ item.name ~ ' x' ~ item.qty }}"
        " = {{ '%.2f' % (item.price * item.qty) }}\n{% endfor %}"
        "{{ ['a', 'b']|join(', ') }} {{ 2**10 }} {{ 7 // 2 }} {{ 'ab' * 3 }} {{ 'x'|center(5) }}|"
        "{{ 'a-b'|replace('-', '+') }} {{ [1] + [2] }}"
    )
    result = _render(source, values)
    assert isinstance(result, Rendered), result
    assert result.parts["email.text"] == (
        "Hi Ann!\n1/2 tea x2 = 3.00\n2/2 cake x1 = 3.25\na, b 1024 3 ababab   x  |a+b [1, 2]"
    )


def test_html_concatenation_still_escapes_values() -> None:
    result = _render("<p>{{ '<b>' ~ name }}</p>{{ [name, 'x']|join('<br>') }}", {"name": "<i>"}, "email.html")
    assert isinstance(result, Rendered)
    assert result.parts["email.html"] == "<p>&lt;b&gt;&lt;i&gt;</p>&lt;i&gt;&lt;br&gt;x"


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("{% autoescape false %}{{ x }}{% endautoescape %}", "autoescape blocks are not allowed"),
        # A set block gathers text that no output limit sees (a loop of literal text, a gigabyte).
        ("{% set x %}{% for a in xs %}yyyy{% endfor %}{% endset %}{{ x }}", "set blocks are not allowed"),
    ],
)
def test_blocks_that_escape_the_limits_are_refused(source: str, why: str) -> None:
    with pytest.raises(TemplateUnsafeError) as caught:
        compile_template(TemplateSpec("x", 1, {"email.html": source}))
    assert why in caught.value.message


def test_operators_refuse_before_allocating() -> None:
    with spending(Budget()), pytest.raises(TemplateBudgetError):
        bounded_binop("*", "a", MAX_VALUE + 1)
    with spending(Budget()):
        assert bounded_binop("*", "a", MAX_VALUE) == "a" * MAX_VALUE
        assert bounded_binop("**", 2, -99999999) == 0.0  # a negative exponent is a float, never a big int
