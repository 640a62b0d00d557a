"""The renderer's budget: operators, filters, `~` and loops sized before they run; ordinary templates untouched."""

from __future__ import annotations

import time

import pytest

from herald.templates.budget import MAX_ITERATIONS, MAX_VALUE, Budget, TemplateBudgetError, bounded_binop, spending
from herald.templates.render import (
    Held,
    Rendered,
    TemplateSpec,
    TemplateUnsafeError,
    compile_template,
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
    started = time.perf_counter()
    with pytest.raises(TemplateUnsafeError) as caught:
        compile_template(TemplateSpec("bomb", 1, {"sms.body": source}))
    assert why in caught.value.message
    assert caught.value.code == "template_unsafe" and caught.value.fields["part"] == "sms.body"
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("source", "values", "why"),
    [
        ("{{ w * n }}", {"w": "ab", "n": 10**9}, "* would build a value"),
        ("{{ n ** n }}", {"n": 99999}, "** would build a number"),
        ("{% set s = w %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}", {"w": "abcdefgh"}, "~ would build"),
        ("{% for a in xs %}{% for b in xs %}{% for c in xs %}.{% endfor %}{% endfor %}{% endfor %}",
         {"xs": list(range(100))}, "loop iterations"),
        ("{{ xs|join(w) }}", {"xs": list(range(50000)), "w": "y" * 50}, "join would build"),
    ],
)  # fmt: skip
def test_bombs_built_from_values_are_refused_at_render_time(source: str, values: dict[str, object], why: str) -> None:
    compile_template(TemplateSpec("bomb", 1, {"sms.body": source}))  # nothing constant to refuse
    started = time.perf_counter()
    with pytest.raises(TemplateUnsafeError) as caught:
        render_template(TemplateSpec("bomb", 1, {"sms.body": source}), values)
    assert why in caught.value.message
    assert time.perf_counter() - started < 0.5


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


def test_autoescape_blocks_are_refused() -> None:
    with pytest.raises(TemplateUnsafeError) as caught:
        compile_template(TemplateSpec("x", 1, {"email.html": "{% autoescape false %}{{ x }}{% endautoescape %}"}))
    assert "autoescape blocks are not allowed" in caught.value.message


def test_operators_refuse_before_allocating() -> None:
    with spending(Budget()), pytest.raises(TemplateBudgetError):
        bounded_binop("*", "a", MAX_VALUE + 1)
    with spending(Budget()):
        assert bounded_binop("*", "a", MAX_VALUE) == "a" * MAX_VALUE
        assert bounded_binop("**", 2, -99999999) == 0.0  # a negative exponent is a float, never a big int
