"""Strict sandboxed rendering: fallbacks, holds for missing variables, SSTI refusals, leftover scans."""

from __future__ import annotations

import copy

import pytest

from herald.templates import (
    LEFTOVER_PATTERNS,
    Held,
    LeftoverPattern,
    Rendered,
    TemplateInvalidError,
    TemplateSpec,
    TemplateUnsafeError,
    VariableSpec,
    compile_template,
    coverage_report,
    find_leftovers,
    render_template,
)
from herald.templates.render import MAX_SOURCE_CHARS, clear_compile_cache, compile_cache_info

ORDER = TemplateSpec(
    id="order-shipped",
    version=3,
    parts={
        "email.subject": "Your order {{ order_id }} is on its way",
        "email.html": "<p>Hello {{ contact.first_name }},</p><p>{{ note }}</p>",
        "email.text": "Hello {{ contact.first_name }},\n{{ note }}\n",
        "sms.body": "Hi {{ contact.first_name }}, order {{ order_id }} shipped.",
        "whatsapp.param.2": "{{ order_id }}",
        "whatsapp.param.1": "{{ contact.first_name }}",
        "voice.text": "Hello {{ contact.first_name }}. Your order has shipped.",
    },
    variables={"note": VariableSpec(fallback="Thanks for shopping with us.")},
)


def values(**contact: object) -> dict[str, object]:
    return {"contact": contact, "order_id": "A-1001", "note": "Fragile <handle with care>"}


def rendered(result: Rendered | Held) -> Rendered:
    assert isinstance(result, Rendered), result
    return result


def held(result: Rendered | Held) -> Held:
    assert isinstance(result, Held), result
    return result


# -- rendering every channel ------------------------------------------------------------------


def test_every_channel_part_renders_and_only_html_is_escaped() -> None:
    result = rendered(render_template(ORDER, values(first_name="Zoë <b>")))
    assert result.parts["email.subject"] == "Your order A-1001 is on its way"
    assert result.parts["email.html"] == ("<p>Hello Zoë &lt;b&gt;,</p><p>Fragile &lt;handle with care&gt;</p>")
    assert result.parts["email.text"] == "Hello Zoë <b>,\nFragile <handle with care>\n"
    assert result.parts["sms.body"] == "Hi Zoë <b>, order A-1001 shipped."
    assert result.parts["voice.text"] == "Hello Zoë <b>. Your order has shipped."
    assert result.whatsapp_params() == ("Zoë <b>", "A-1001")
    assert result.fallbacks_used == ()


def test_a_declared_fallback_fills_a_missing_or_blank_value() -> None:
    for note in (None, "", "   "):
        data = values(first_name="Ann") | {"note": note}
        result = rendered(render_template(ORDER, data))
        assert "Thanks for shopping with us." in result.parts["email.text"]
        assert result.fallbacks_used == ("note",)
    data = values(first_name="Ann")
    del data["note"]
    assert rendered(render_template(ORDER, data)).fallbacks_used == ("note",)


def test_fallbacks_do_not_modify_the_callers_values() -> None:
    data = {"contact": {"first_name": "Ann"}, "order_id": "A-1", "note": ""}
    before = copy.deepcopy(data)
    rendered(render_template(ORDER, data))
    assert data == before


def test_nested_fallbacks_are_supported() -> None:
    spec = TemplateSpec(
        "greeting", 1, {"sms.body": "Hi {{ contact.first_name }}!"}, {"contact.first_name": VariableSpec("there")}
    )
    assert rendered(render_template(spec, {"contact": {}})).parts["sms.body"] == "Hi there!"
    assert rendered(render_template(spec, {})).parts["sms.body"] == "Hi there!"
    assert rendered(render_template(spec, {"contact": {"first_name": "Bo"}})).parts["sms.body"] == "Hi Bo!"


# -- holds for missing variables --------------------------------------------------------------


@pytest.mark.parametrize(
    "contact",
    [{}, {"first_name": None}, {"first_name": ""}, {"first_name": "  "}],
    ids=["absent", "none", "empty", "blank"],
)
def test_a_missing_or_empty_variable_without_fallback_holds_the_message(contact: dict[str, object]) -> None:
    result = held(render_template(ORDER, values(**contact)))
    assert result.reason == "missing_variable:contact.first_name"
    assert result.variables == ("contact.first_name",)


def test_all_missing_variables_are_listed() -> None:
    result = held(render_template(ORDER, {"contact": {}}))
    assert result.reason == "missing_variable:contact.first_name"
    assert result.variables == ("contact.first_name", "order_id")


def test_a_value_missing_only_at_render_time_is_reported_by_its_full_path() -> None:
    spec = TemplateSpec("items", 1, {"email.text": "{% for o in contact.orders %}{{ o.sku }} {% endfor %}"})
    data = {"contact": {"orders": [{"sku": "A1"}, {"name": "no sku"}]}}
    result = held(render_template(spec, data))
    assert result.reason == "missing_variable:contact.orders.1.sku"
    assert result.part == "email.text"


def test_default_filter_and_is_defined_make_a_variable_optional() -> None:
    spec = TemplateSpec(
        "optional",
        1,
        {"sms.body": "Hi {{ contact.nickname | default('friend') }}{% if vip is defined %} (VIP){% endif %}"},
    )
    needs = compile_template(spec).needs
    assert needs.required == frozenset()
    assert needs.optional == {"contact.nickname", "vip"}
    assert rendered(render_template(spec, {})).parts["sms.body"] == "Hi friend"
    assert rendered(render_template(spec, {"vip": True})).parts["sms.body"] == "Hi friend (VIP)"


def test_mapping_keys_are_never_shadowed_by_dict_methods() -> None:
    spec = TemplateSpec("keys", 1, {"sms.body": "{{ contact.items }} {{ contact.values }} {{ contact['keys'] }}"})
    data = {"contact": {"items": "3 items", "values": "good value", "keys": "two keys"}}
    assert rendered(render_template(spec, data)).parts["sms.body"] == "3 items good value two keys"
    assert held(render_template(spec, {"contact": {"keys": "k", "values": "v"}})).reason == (
        "missing_variable:contact.items"
    )


# -- SSTI and sandbox limits ------------------------------------------------------------------

SSTI_PAYLOADS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ self._TemplateReference__context }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{{ contact|attr('__class__') }}",
    "{{ '{0.__class__}'|format(contact) }}",
    "{{ contact['__class__'] }}",
    "{{ range(100000)|list }}",
    "{{ lipsum() }}",
    "{{ namespace }}",
    "{% include 'secrets.txt' %}",
    "{% import 'macros.html' as m %}",
    "{% extends 'base.html' %}",
    "{% macro m() %}x{% endmacro %}",
    "{{ contact.first_name.upper() }}",
    "{{ contact|map(attribute='__class__')|list }}",
    "{{ contact.first_name|safe }}",
]


@pytest.mark.parametrize("payload", SSTI_PAYLOADS)
def test_ssti_payloads_are_refused_at_compile_time(payload: str) -> None:
    spec = TemplateSpec("evil", 1, {"email.html": payload})
    with pytest.raises(TemplateUnsafeError) as caught:
        compile_template(spec)
    assert caught.value.code == "template_unsafe"
    assert caught.value.fields["part"] == "email.html"
    # Rendering goes through the same compile step: refused, never run.
    with pytest.raises(TemplateUnsafeError):
        render_template(spec, {"contact": {"first_name": "Ann"}})


def test_syntax_errors_and_oversized_sources_are_invalid_templates() -> None:
    with pytest.raises(TemplateInvalidError) as caught:
        compile_template(TemplateSpec("broken", 1, {"sms.body": "Hi {{ name "}))
    assert caught.value.code == "template_invalid"
    with pytest.raises(TemplateInvalidError):
        compile_template(TemplateSpec("huge", 1, {"sms.body": "x" * (MAX_SOURCE_CHARS + 1)}))
    with pytest.raises(TemplateInvalidError):
        TemplateSpec("parts", 1, {"fax.body": "hello"})


def test_output_beyond_the_size_cap_holds_the_message() -> None:
    spec = TemplateSpec(
        "bomb", 1, {"email.text": "{% for a in rows %}{% for b in rows %}{{ blob }}{% endfor %}{% endfor %}"}
    )
    result = held(render_template(spec, {"rows": list(range(100)), "blob": "x" * 1000}))
    assert result.reason == "output_too_large:email.text"


def test_data_that_breaks_an_expression_holds_only_that_message() -> None:
    spec = TemplateSpec("math", 1, {"sms.body": "{{ contact.age + 1 }} years"})
    assert rendered(render_template(spec, {"contact": {"age": 41}})).parts["sms.body"] == "42 years"
    assert held(render_template(spec, {"contact": {"age": "41"}})).reason == "render_failed:sms.body:TypeError"


def test_printing_a_whole_record_is_refused() -> None:
    spec = TemplateSpec("record", 1, {"sms.body": "{{ contact }}"})
    assert held(render_template(spec, {"contact": {"a": 1}})).reason == "render_failed:sms.body:TypeError"


def test_a_newline_in_a_rendered_subject_is_held() -> None:
    spec = TemplateSpec("subject", 1, {"email.subject": "Hi {{ name }}"})
    result = held(render_template(spec, {"name": "Ann\r\nBcc: everyone@example.com"}))
    assert result.reason == "newline_in_subject"


# -- compile cache ----------------------------------------------------------------------------


def test_each_template_version_is_compiled_once() -> None:
    clear_compile_cache()
    for name in ("Ann", "Bo", "Cy"):
        rendered(render_template(ORDER, values(first_name=name)))
    info = compile_cache_info()
    assert (info.misses, info.hits) == (1, 2)
    rendered(render_template(TemplateSpec(ORDER.id, 4, ORDER.parts, ORDER.variables), values(first_name="Di")))
    assert compile_cache_info().misses == 2


def test_a_version_edited_in_place_is_never_served_stale() -> None:
    first = TemplateSpec("edited", 1, {"sms.body": "one {{ x }}"})
    second = TemplateSpec("edited", 1, {"sms.body": "two {{ x }}"})
    assert rendered(render_template(first, {"x": "a"})).parts["sms.body"] == "one a"
    assert rendered(render_template(second, {"x": "a"})).parts["sms.body"] == "two a"


# -- leftover placeholders --------------------------------------------------------------------


@pytest.mark.parametrize("entry", LEFTOVER_PATTERNS, ids=lambda e: e.name)
def test_every_leftover_pattern_catches_its_example(entry: LeftoverPattern) -> None:
    assert entry.name in {leftover.pattern for leftover in find_leftovers("sms.body", entry.example)}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("Hi [FirstName], welcome", "bracket_token"),
        ("Hi [First Name], welcome", "bracket_token"),
        ("Hi [NAME], welcome", "bracket_token"),
        ("Hi [first_name], welcome", "bracket_token"),
        ("Dear %first_name%,", "percent_token"),
        ("Hello None, your order", "null_literal"),
        ("<td>null</td>", "null_literal"),
        ("Total: nan", "null_literal"),
        ("Name: undefined", "null_literal"),
        ("Hi !", "empty_greeting"),
        ("Dear ,", "empty_greeting"),
        ("Dear, we miss you", "empty_greeting"),
        ("Good morning , team", "empty_greeting"),
        ("Hi  Smith, welcome", "greeting_double_space"),
        ("  <p>Hello Ann  Smith,</p>", "greeting_double_space"),
        ("{% endif %}", "jinja_statement"),
        ("}} and {{", "jinja_expression"),
    ],
)
def test_leftovers_are_found(text: str, pattern: str) -> None:
    assert pattern in {leftover.pattern for leftover in find_leftovers("sms.body", text)}


@pytest.mark.parametrize(
    "text",
    [
        "See note [1] and [see below].",
        "Read [the Docs](https://example.com/docs) or [Pricing](https://example.com/p).",
        "50% off and 20% more this week",
        "https://example.com/caf%C3%A9?q=%E2%80%99x%20y",
        "None of the above applies; the contract is null and void.",
        "Hi, Ann! Hello! Dear Ann, thanks.",
        "Hi Ann,\n\nThanks  for  waiting.",  # double spaces outside the greeting line are fine
        "<style>@media (max-width:600px){.a{color:red}}</style>",
        "Your balance is $10 (ten dollars).",
        "NaNa and Nan are grandmothers; banana; nonentity",
    ],
)
def test_ordinary_text_is_not_mistaken_for_a_leftover(text: str) -> None:
    assert find_leftovers("email.text", text) == []


def test_html_parts_are_also_checked_as_read_with_tags_removed() -> None:
    assert [x.pattern for x in find_leftovers("email.html", "<p>Hello <b></b>, welcome</p>")] == ["empty_greeting"]
    assert "go_no_value" in {x.pattern for x in find_leftovers("email.html", "<p>Hi &lt;no value&gt;</p>")}


def test_a_leftover_in_the_output_holds_the_message_with_part_and_snippet() -> None:
    spec = TemplateSpec("import", 1, {"sms.body": "Hi {{ contact.first_name }}, thanks"})
    result = held(render_template(spec, {"contact": {"first_name": "*|FNAME|*"}}))
    assert result.reason == "leftover_placeholder:sms.body:*|FNAME|*"
    assert result.part == "sms.body"


def test_a_raw_block_cannot_smuggle_placeholders_out() -> None:
    spec = TemplateSpec("raw", 1, {"email.text": "Hi {% raw %}{{ first_name }}{% endraw %}"})
    assert held(render_template(spec, {})).reason.startswith("leftover_placeholder:email.text:{{ first_name }}")


def test_an_optional_name_that_comes_out_empty_is_caught_as_an_empty_greeting() -> None:
    spec = TemplateSpec("greet", 1, {"email.html": "<p>Hello {{ contact.nickname | default('') }},</p>"})
    assert held(render_template(spec, {"contact": {}})).reason == "leftover_placeholder:email.html:Hello ,"


def test_a_missing_first_name_between_words_is_caught_as_a_double_space() -> None:
    spec = TemplateSpec("greet", 1, {"sms.body": "Hi {{ first | default('') }} {{ last }}, welcome"})
    result = held(render_template(spec, {"last": "Smith"}))
    assert result.reason.startswith("leftover_placeholder:sms.body:Hi  S")


def test_the_string_none_in_contact_data_is_caught() -> None:
    result = held(render_template(ORDER, values(first_name="None")))
    assert result.reason.startswith("leftover_placeholder:")
    assert "None" in result.reason


# -- coverage ---------------------------------------------------------------------------------


def test_coverage_report_lists_who_would_be_held_and_who_gets_fallbacks() -> None:
    needs = compile_template(ORDER).needs
    report = coverage_report(
        needs,
        [
            ("c1", values(first_name="Ann")),
            ("c2", {"contact": {"first_name": ""}, "order_id": "A-2"}),
            ("c3", {"contact": {"first_name": "Cy"}, "note": ""}),
            ("c4", {"contact": {"first_name": "Di"}, "order_id": "A-4"}),
        ],
    )
    assert report.total == 4
    assert report.missing_by_contact == {"c2": ("contact.first_name",), "c3": ("order_id",)}
    assert report.missing_counts == {"contact.first_name": 1, "order_id": 1}
    assert report.fallback_counts == {"note": 3}
    assert report.held == 2
    assert not report.complete
