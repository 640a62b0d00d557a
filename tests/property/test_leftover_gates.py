"""The leftover scan's cheap gates never hide a leftover: gated and ungated scans agree on any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from herald.templates.checks import LEFTOVER_PATTERNS, find_leftovers

WORDS = ["Hello", "hi", "DEAR", "dear", "Good morning", "None", "null", "NaN", "nan", "undefined", "[Name]",
         "[first_name]", "Smith", "order", "ſ", "K", "İ"]  # fmt: skip
PIECES = st.one_of(st.sampled_from(WORDS), st.sampled_from(list(" \t\n,.!;:?[]()<>{}%*|$-'’")), st.text(max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join))
def test_gates_are_necessary_conditions(text: str) -> None:
    gated = {leftover.pattern for leftover in find_leftovers("email.text", text)}
    assert gated == {entry.name for entry in LEFTOVER_PATTERNS if entry.pattern.search(text)}


def test_every_gate_passes_its_own_example() -> None:
    for entry in LEFTOVER_PATTERNS:
        assert entry.may_match(entry.example), entry.name
