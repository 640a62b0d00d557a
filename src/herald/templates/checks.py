"""Template checks: unsafe constructs, the variables a template needs, leftover placeholders, coverage."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from jinja2 import nodes

# Filters a template may use: pure text helpers only. `attr`, `format`, `map`, `safe`, … are the
# routes of past sandbox escapes and of contact data turned into markup, so they are not offered.
ALLOWED_FILTERS = frozenset(
    {
        "abs", "capitalize", "center", "count", "d", "default", "e", "escape", "first", "float", "int",
        "join", "last", "length", "lower", "replace", "round", "string", "striptags", "title", "trim",
        "truncate", "upper", "urlencode", "wordcount",
    }
)  # fmt: skip
ALLOWED_TESTS = frozenset(
    {"defined", "undefined", "none", "number", "string", "eq", "ne", "even", "odd", "lt", "le", "gt", "ge"}
)
# Nodes whose use means "this variable is optional": `x | default(...)`, `x is defined`.
_OPTIONAL_FILTERS = frozenset({"default", "d"})
_OPTIONAL_TESTS = frozenset({"defined", "undefined"})
_FORBIDDEN_NODES: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Call, "calls are not allowed; use filters"),
    (nodes.Include, "include is not allowed"),
    (nodes.Import, "import is not allowed"),
    (nodes.FromImport, "import is not allowed"),
    (nodes.Extends, "extends is not allowed"),
    (nodes.Macro, "macros are not allowed"),
    (nodes.CallBlock, "call blocks are not allowed"),
    (nodes.FilterBlock, "filter blocks are not allowed"),
    # `{% set x %}…{% endset %}` gathers text no output limit sees; `{% set x = … %}` is fine.
    (nodes.AssignBlock, "set blocks are not allowed; use {% set name = expression %}"),
    # `{% autoescape false %}` would print contact data into HTML parts unescaped.
    (nodes.EvalContextModifier, "autoescape blocks are not allowed"),
)
_FORBIDDEN_NAMES = frozenset({"self", "cycler", "joiner", "namespace", "lipsum", "range", "dict"})
EMPTY_VALUES = (None, "")


# ---------------------------------------------------------------------------------------------
# Safety: refuse unsafe constructs before anything is compiled or run.


def unsafe_constructs(tree: nodes.Template) -> list[str]:
    """Why this template may not run, one line per problem; [] when it is safe."""
    problems: list[str] = []
    for node in tree.find_all(nodes.Node):
        problems.extend(_node_problems(node))
    return sorted(set(problems))


def _is_private_key(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Const) and isinstance(node.value, str) and node.value.startswith("_")


def _node_problems(node: nodes.Node) -> Iterator[str]:
    for kind, why in _FORBIDDEN_NODES:
        if isinstance(node, kind):
            yield why
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        yield f"access to attribute {node.attr!r} is not allowed"
    if isinstance(node, nodes.Getitem) and _is_private_key(node.arg):
        yield f"access to item {node.arg.value!r} is not allowed"  # type: ignore[attr-defined]
    if isinstance(node, nodes.Name) and (node.name.startswith("_") or node.name in _FORBIDDEN_NAMES):
        yield f"the name {node.name!r} is not available in templates"
    if isinstance(node, nodes.Filter) and node.name not in ALLOWED_FILTERS:
        yield f"the filter {node.name!r} is not allowed"
    if isinstance(node, nodes.Test) and node.name not in ALLOWED_TESTS:
        yield f"the test {node.name!r} is not allowed"


# ---------------------------------------------------------------------------------------------
# Variables: which dotted paths (contact.first_name) a template reads, and which of them are required.


@dataclass(frozen=True, slots=True)
class TemplateNeeds:
    """What a compiled template reads from the data, and the declared fallbacks."""

    required: frozenset[str]  # read unconditionally: missing ⇒ fallback or hold
    optional: frozenset[str]  # read only under `| default(...)` or `is defined`
    fallbacks: Mapping[str, str]  # declared per-variable fallbacks

    @property
    def variables(self) -> frozenset[str]:
        return self.required | self.optional


def _dotted_path(node: nodes.Node) -> str | None:
    """'contact.first_name' for contact.first_name or contact['first_name']; None for anything else."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        parent = _dotted_path(node.node)
        return f"{parent}.{node.attr}" if parent else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        parent = _dotted_path(node.node)
        return f"{parent}.{node.arg.value}" if parent else None
    return None


def _is_optional_wrapper(node: nodes.Node) -> bool:
    return (isinstance(node, nodes.Filter) and node.name in _OPTIONAL_FILTERS) or (
        isinstance(node, nodes.Test) and node.name in _OPTIONAL_TESTS
    )


def _walk_paths(node: nodes.Node, optional: bool, found: dict[str, bool]) -> None:
    """Record the longest dotted path at each read; a path is required if any read of it is."""
    path = _dotted_path(node) if isinstance(node, (nodes.Name, nodes.Getattr, nodes.Getitem)) else None
    if path is not None and getattr(node, "ctx", "load") == "load":
        found[path] = found.get(path, False) or not optional
        return
    if _is_optional_wrapper(node):
        target = node.node  # type: ignore[attr-defined]
        _walk_paths(target, True, found)
        for child in node.iter_child_nodes(exclude=("node",)):
            _walk_paths(child, optional, found)
        return
    for child in node.iter_child_nodes():
        _walk_paths(child, optional, found)


def template_paths(tree: nodes.Template, undeclared: Iterable[str]) -> dict[str, bool]:
    """Dotted paths rooted in the template's free variables → required?; loop variables are skipped."""
    roots = set(undeclared)
    found: dict[str, bool] = {}
    _walk_paths(tree, False, found)
    return {path: required for path, required in found.items() if path.split(".", 1)[0] in roots}


def merge_needs(per_part: Iterable[Mapping[str, bool]], fallbacks: Mapping[str, str]) -> TemplateNeeds:
    required: set[str] = set()
    optional: set[str] = set()
    for paths in per_part:
        for path, is_required in paths.items():
            (required if is_required else optional).add(path)
    return TemplateNeeds(frozenset(required), frozenset(optional - required), dict(fallbacks))


_MISSING = object()


def lookup(values: Mapping[str, object], path: str) -> object:
    """The value at a dotted path through nested mappings, or the _MISSING sentinel."""
    current: object = values
    for key in path.split("."):
        if not isinstance(current, Mapping) or key not in current:
            return _MISSING
        current = current[key]
    return current


def is_blank(value: object) -> bool:
    """Missing, None or whitespace-only text: a value that would leave a hole in the message."""
    if value is _MISSING or value is None:
        return True
    return isinstance(value, str) and not value.strip()


def find_missing(needs: TemplateNeeds, values: Mapping[str, object]) -> tuple[str, ...]:
    """Required variables that are blank and have no declared fallback (sorted)."""
    return tuple(
        sorted(path for path in needs.required if path not in needs.fallbacks and is_blank(lookup(values, path)))
    )


def find_fallbacks_used(needs: TemplateNeeds, values: Mapping[str, object]) -> tuple[str, ...]:
    """Variables (required or optional) that are blank and will be filled from their declared fallback."""
    return tuple(sorted(path for path in needs.variables if path in needs.fallbacks and is_blank(lookup(values, path))))


# ---------------------------------------------------------------------------------------------
# Leftovers: anything in a rendered part that looks like a placeholder that was never filled.


@dataclass(frozen=True, slots=True)
class LeftoverPattern:
    name: str
    pattern: re.Pattern[str]
    example: str  # a text the pattern must catch (tests iterate over the table)
    # A cheap necessary condition: the pattern cannot match a text that contains none of these substrings
    # (or, for `gate`, in which this simpler regex finds nothing). Every message of a batch is scanned,
    # and the word-boundary patterns cost ~100 µs per kilobyte; most texts fail the gate at once (a single
    # character is the cheapest needle: a memchr).
    needs: tuple[str, ...] = ()
    gate: re.Pattern[str] | None = None

    def may_match(self, text: str) -> bool:
        if self.needs:
            for needle in self.needs:  # a loop, not any(): this runs ~40 times per message planned
                if needle in text:
                    break
            else:
                return False
        return self.gate is None or self.gate.search(text) is not None


_GREETING = r"(?:hello|hi|hey|dear|greetings|good\s+(?:morning|afternoon|evening))"

LEFTOVER_PATTERNS: tuple[LeftoverPattern, ...] = (
    LeftoverPattern("jinja_expression", re.compile(r"\{\{[^\n]{0,40}"), "Hi {{ first_name }},", needs=("{",)),
    LeftoverPattern("jinja_statement", re.compile(r"\{%[^\n]{0,40}"), "{% if vip %}Gold{% endif %}", needs=("{",)),
    LeftoverPattern("jinja_comment", re.compile(r"\{#[^\n]{0,40}"), "Hi {# todo #} Ann", needs=("{",)),
    # [FirstName], [First Name], [NAME], [first_name]; not [1], [see below], nor a markdown link [x](url).
    LeftoverPattern(
        "bracket_token",
        re.compile(r"(?<!\[)\[(?:[A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)?|[A-Z][A-Z0-9_]*|[a-z]+(?:_[a-z0-9]+)+)\](?![\[(])"),
        "Dear [First Name],",
        needs=("[",),
    ),
    LeftoverPattern("mailchimp_merge_tag", re.compile(r"\*\|[^|*\s]{1,40}\|\*"), "Hi *|FNAME|*,", needs=("|",)),
    # %FNAME% / %first_name%, but not URL escapes such as %C3%A9.
    LeftoverPattern(
        "percent_token",
        re.compile(r"%(?![0-9A-Fa-f]{2}%)[A-Za-z_][A-Za-z0-9_]{0,39}%"),
        "Hi %FNAME%,",
        needs=("%",),
    ),
    LeftoverPattern("dollar_brace", re.compile(r"\$\{[^}\n]{0,40}\}"), "Hi ${name},", needs=("$",)),
    LeftoverPattern("go_no_value", re.compile(r"<no value>"), "Hi <no value>,"),
    # None/null/undefined/nan where a value would go: a whole word not continuing a sentence
    # ("None of the above" and "null and void" are prose; "Hello None," and ">null<" are holes).
    LeftoverPattern(
        "null_literal",
        re.compile(r"(?<![\w'’-])(?:None|null|undefined|nan|NaN)(?![\w'’-])(?!\s+[a-z])"),
        "Your code is None.",
        needs=("None", "null", "undefined", "nan", "NaN"),
    ),
    # "Hello ," "Hi !" "Dear ," — a greeting whose name came out empty.
    LeftoverPattern(
        "empty_greeting",
        re.compile(rf"(?i)\b(?:{_GREETING}[ \t]+|dear[ \t]*)[,!.;:?]"),
        "Hello , thanks for your order",
        # The punctuation follows a space or tab, or the r of "dear" (R and r are its only case forms).
        gate=re.compile(r"[ \tRr][,!.;:?]"),
    ),
    # "Hi  Smith," — a doubled space in a greeting line where a first name went missing.
    LeftoverPattern(
        "greeting_double_space",
        re.compile(rf"(?im)^[ \t]*(?:<[^>\n]*>[ \t]*)*{_GREETING}\b(?:[^\n<]*?\S)?[ \t]{{2,}}\S"),
        "Dear  Smith,",
        needs=("  ", " \t", "\t ", "\t\t"),
    ),
)


@dataclass(frozen=True, slots=True)
class Leftover:
    part: str
    pattern: str
    snippet: str

    @property
    def reason(self) -> str:
        return f"leftover_placeholder:{self.part}:{self.snippet}"


_TAG = re.compile(r"<[^>]*>")
_SNIPPET_CHARS = 40


def _snippet(text: str) -> str:
    # Spaces are kept as they are: a doubled space can be the very evidence of a hole.
    return re.sub(r"[\r\n\t]", " ", text).strip()[:_SNIPPET_CHARS] or text[:_SNIPPET_CHARS]


def _views(part: str, text: str) -> tuple[str, ...]:
    """HTML is checked as written and as read (tags stripped, entities decoded: &lt;no value&gt;)."""
    if not part.endswith("html"):
        return (text,)
    return (text, html.unescape(_TAG.sub("", text)))


def find_leftovers(part: str, text: str) -> list[Leftover]:
    found: dict[tuple[str, str], Leftover] = {}
    for view in _views(part, text):
        for entry in LEFTOVER_PATTERNS:
            if not entry.may_match(view):
                continue
            for match in entry.pattern.finditer(view):
                leftover = Leftover(part, entry.name, _snippet(match.group(0)))
                found.setdefault((entry.name, leftover.snippet), leftover)
    return list(found.values())


def first_leftover(parts: Mapping[str, str]) -> Leftover | None:
    """The first leftover placeholder in any part (parts in name order), or None when all are clean."""
    for part in sorted(parts):
        leftovers = find_leftovers(part, parts[part])
        if leftovers:
            return leftovers[0]
    return None


# ---------------------------------------------------------------------------------------------
# Coverage: which variables each contact would miss (campaign preflight and simulation).


@dataclass(frozen=True, slots=True)
class CoverageReport:
    total: int
    missing_by_contact: Mapping[str, tuple[str, ...]]  # only contacts that would be held
    missing_counts: Mapping[str, int]  # variable → contacts missing it (no fallback)
    fallback_counts: Mapping[str, int]  # variable → contacts who get the fallback

    @property
    def held(self) -> int:
        return len(self.missing_by_contact)

    @property
    def complete(self) -> bool:
        return not self.missing_by_contact


def coverage_report(needs: TemplateNeeds, contacts: Iterable[tuple[str, Mapping[str, object]]]) -> CoverageReport:
    """Run the variable checks over (contact id, values) pairs without rendering anything."""
    total = 0
    missing_by_contact: dict[str, tuple[str, ...]] = {}
    missing_counts: dict[str, int] = {}
    fallback_counts: dict[str, int] = {}
    for contact_id, values in contacts:
        total += 1
        missing = find_missing(needs, values)
        if missing:
            missing_by_contact[contact_id] = missing
        for path in missing:
            missing_counts[path] = missing_counts.get(path, 0) + 1
        for path in find_fallbacks_used(needs, values):
            fallback_counts[path] = fallback_counts.get(path, 0) + 1
    return CoverageReport(total, missing_by_contact, missing_counts, fallback_counts)
