"""Rendering a template without template syntax skips compiling, and answers exactly what compiling does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from herald.templates.render import TemplateSpec, render_compiled, render_template
from herald.templates.render import compile_template as compile_spec

PIECES = st.one_of(
    st.sampled_from(["Hello", "Dear ", "[Name]", "{name}", "{ {", "{%", "{{ x }}", "None", "\n", "\r", " ", "!", "ß"]),
    st.text(max_size=3),
)
TEXT = st.lists(PIECES, max_size=12).map("".join)
PARTS = st.dictionaries(st.sampled_from(["email.subject", "email.text", "email.html", "sms.body"]), TEXT, min_size=1)


@settings(max_examples=300, deadline=None)
@given(PARTS)
def test_literal_parts_render_as_compiled(parts: dict[str, str]) -> None:
    spec = TemplateSpec("inline", 0, parts)
    try:
        expected = render_compiled(compile_spec(spec), {})
    except Exception as exc:  # a part with real template syntax may not compile: then neither way may pass
        try:
            render_template(spec, {})
        except type(exc):
            return
        raise AssertionError(f"compiling raised {exc!r}, the literal path did not") from exc
    assert render_template(spec, {}) == expected
