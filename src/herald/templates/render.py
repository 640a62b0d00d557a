"""Render template versions in a strict Jinja2 sandbox: Rendered, or Held with the reason why not."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from jinja2 import TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import StrictUndefined

from herald.core.channels import PART_NAME, describe_part_names
from herald.core.errors import HeraldError
from herald.templates.budget import Budget, deadline, spending
from herald.templates.checks import (
    TemplateNeeds,
    find_fallbacks_used,
    find_missing,
    first_leftover,
    is_blank,
    lookup,
    merge_needs,
    template_paths,
    unsafe_constructs,
)
from herald.templates.sandbox import BudgetedSandbox, budget_tree, refused_constants

MAX_SOURCE_CHARS = 64 * 1024  # per part, as written by the operator
MAX_OUTPUT_CHARS = 1024 * 1024  # per part, after rendering (RELIABILITY R4.4)
COMPILE_CACHE_SIZE = 512
_MISSING_MARK = "herald-missing:"


class TemplateInvalidError(HeraldError):
    """The template itself is broken (syntax, size, part names); no contact can get it."""

    code = "template_invalid"
    http_status = 422


class TemplateUnsafeError(HeraldError):
    """The template tries something the sandbox refuses (dunder access, calls, imports, …) or would spend more
    than its budget (`9**9999999`, `'a' * 10**9`, loops over loops)."""

    code = "template_unsafe"
    http_status = 422


@dataclass(frozen=True, slots=True)
class VariableSpec:
    fallback: str | None = None  # used when the value is missing or blank; None ⇒ hold the message


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """One immutable template version: parts per channel and the variables it declares."""

    id: str
    version: int
    parts: Mapping[str, str]
    variables: Mapping[str, VariableSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = sorted(name for name in self.parts if not PART_NAME.match(name))
        if bad or not self.parts:
            raise TemplateInvalidError(
                f"template parts must be named {describe_part_names()}",
                template_id=self.id,
                parts=bad,
            )


@dataclass(frozen=True, slots=True)
class Rendered:
    parts: Mapping[str, str]
    fallbacks_used: tuple[str, ...] = ()

    def whatsapp_params(self) -> tuple[str, ...]:
        """WhatsApp template parameters in order ({{1}}, {{2}}, …)."""
        numbered = [(int(name.rsplit(".", 1)[1]), text) for name, text in self.parts.items() if ".param." in name]
        return tuple(text for _, text in sorted(numbered))


@dataclass(frozen=True, slots=True)
class Held:
    """Not sendable as it stands: reason is missing_variable:<path> | leftover_placeholder:<part>:<snippet> | …"""

    reason: str
    part: str | None = None
    variables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    template_id: str
    version: int
    templates: Mapping[str, _Part]
    needs: TemplateNeeds


# ---------------------------------------------------------------------------------------------
# Data given to templates: mappings become records that know their dotted path, so a value that is
# missing at render time is reported as missing_variable:contact.first_name, not just "first_name".


class _Record:
    """Read-only view of a mapping where attributes are keys; dict methods (items, values) never shadow."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, object], path: str) -> None:
        self._data = data
        self._path = path

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key: str) -> object:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __str__(self) -> str:
        # Printing a whole record ({{ contact }}) is a template bug; it must not reach a person.
        raise TypeError(f"{self._path} is a record, not a value")


def _wrap(value: object, path: str) -> object:
    if isinstance(value, Mapping):
        return _Record({str(k): _wrap(v, f"{path}.{k}") for k, v in value.items()}, path)
    if isinstance(value, (list, tuple)):
        return tuple(_wrap(item, f"{path}.{index}") for index, item in enumerate(value))
    return value


def _with_fallbacks(needs: TemplateNeeds, values: Mapping[str, object]) -> dict[str, object]:
    """A nested copy of the values with declared fallbacks filled in where a value is blank."""
    filled: dict[str, object] = {key: _plain_copy(value) for key, value in values.items()}
    for path in sorted(needs.variables):
        fallback = needs.fallbacks.get(path)
        if fallback is not None and is_blank(lookup(filled, path)):
            _set_path(filled, path, fallback)
    for path in sorted(needs.optional):
        # `contact.nickname | default('x')` must work when `contact` itself is absent.
        _ensure_parents(filled, path)
    return filled


def _plain_copy(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain_copy(v) for k, v in value.items()}
    return value


def _ensure_parents(target: dict[str, object], path: str) -> None:
    current = target
    for key in path.split(".")[:-1]:
        child = current.setdefault(key, {})
        if not isinstance(child, dict):
            return
        current = child


def _set_path(target: dict[str, object], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    current = target
    for key in parents:
        child = current.get(key)
        if not isinstance(child, dict):
            child = {}
            current[key] = child
        current = child
    current[leaf] = value


class _PathUndefined(StrictUndefined):
    """StrictUndefined whose error message carries the dotted path of what was missing."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        owner = self._undefined_obj
        name = str(self._undefined_name)
        if isinstance(owner, _Record):
            return f"{_MISSING_MARK}{owner._path}.{name}"
        return f"{_MISSING_MARK}{name}"


def _environment(autoescape: bool) -> BudgetedSandbox:
    return BudgetedSandbox(undefined=_PathUndefined, autoescape=autoescape, keep_trailing_newline=True, cache_size=0)


_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)


def _environment_for(part: str) -> BudgetedSandbox:
    return _HTML_ENV if part.endswith(".html") else _TEXT_ENV


# ---------------------------------------------------------------------------------------------
# Compiling: once per template version (compiling is ~70x slower than rendering).


class _Part(Protocol):
    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]: ...


class _ConstantPart:
    """A part without any template syntax (most inline API content): nothing to compile or run."""

    def __init__(self, text: str) -> None:
        self._text = text

    def generate(self, *_args: Any, **_kwargs: Any) -> Iterator[str]:
        yield self._text


def _is_literal(source: str) -> bool:
    """No template syntax at all: the text is what it renders to."""
    return "{" not in source or not any(mark in source for mark in ("{{", "{%", "{#"))


def _compile_part(template_id: str, version: int, part: str, source: str) -> tuple[_Part, dict[str, bool]]:
    where = {"template_id": template_id, "version": version, "part": part}
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateInvalidError(f"part {part} is longer than {MAX_SOURCE_CHARS} characters", **where)
    if _is_literal(source):
        # Compiling costs ~1 ms; literal text renders to itself (Jinja never escapes template text).
        return _ConstantPart(source), {}
    env = _environment_for(part)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateInvalidError(f"part {part}: {exc.message} (line {exc.lineno})", **where) from exc
    problems = unsafe_constructs(tree) or refused_constants(tree, env)
    if problems:
        raise TemplateUnsafeError(f"part {part} refused: {problems[0]}", problems=problems, **where)
    paths = template_paths(tree, meta.find_undeclared_variables(tree))
    try:
        template = env.from_string(budget_tree(tree))
    except TemplateSyntaxError as exc:
        raise TemplateInvalidError(f"part {part}: {exc.message}", **where) from exc
    return template, paths


@functools.lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _compile_cached(
    template_id: str,
    version: int,
    parts: tuple[tuple[str, str], ...],
    fallbacks: tuple[tuple[str, str], ...],
) -> CompiledTemplate:
    templates: dict[str, _Part] = {}
    paths: list[dict[str, bool]] = []
    for part, source in parts:
        templates[part], part_paths = _compile_part(template_id, version, part, source)
        paths.append(part_paths)
    return CompiledTemplate(template_id, version, templates, merge_needs(paths, dict(fallbacks)))


def compile_template(spec: TemplateSpec) -> CompiledTemplate:
    """Parse, vet and compile every part; raises TemplateInvalidError / TemplateUnsafeError.

    The cache key includes the sources, so a version edited in place is never served stale.
    """
    parts = tuple(sorted(spec.parts.items()))
    fallbacks = tuple(sorted((name, var.fallback) for name, var in spec.variables.items() if var.fallback is not None))
    return _compile_cached(spec.id, spec.version, parts, fallbacks)


def compile_cache_info() -> functools._CacheInfo:
    return _compile_cached.cache_info()


def clear_compile_cache() -> None:
    _compile_cached.cache_clear()


# ---------------------------------------------------------------------------------------------
# Rendering.


def _render_part(part: str, template: _Part, context: Mapping[str, object], ends_at: float) -> str | Held:
    pieces: list[str] = []
    size = 0
    try:
        # Streamed so an oversized output is cut off early rather than built in full; every operator,
        # filter, `~` and loop iteration is charged to this render's budget (TemplateBudgetError).
        with spending(Budget(ends_at=ends_at)):
            for piece in template.generate(context):
                size += len(piece)
                if size > MAX_OUTPUT_CHARS:
                    return Held(f"output_too_large:{part}", part=part)
                pieces.append(piece)
    except SecurityError as exc:
        raise TemplateUnsafeError(f"part {part} refused at render time: {exc}", part=part) from exc
    except UndefinedError as exc:
        message = str(exc)
        path = message.removeprefix(_MISSING_MARK) if message.startswith(_MISSING_MARK) else message
        return Held(f"missing_variable:{path}", part=part, variables=(path,))
    except Exception as exc:  # contact data can break a filter: hold this message, never the worker
        return Held(f"render_failed:{part}:{type(exc).__name__}", part=part)
    return "".join(pieces)


def render_compiled(compiled: CompiledTemplate, values: Mapping[str, object]) -> Rendered | Held:
    """Render every part for one person's values, then check the result for leftovers."""
    missing = find_missing(compiled.needs, values)
    if missing:
        return Held(f"missing_variable:{missing[0]}", variables=missing)
    filled = _with_fallbacks(compiled.needs, values)
    context = {key: _wrap(value, key) for key, value in filled.items()}
    parts: dict[str, str] = {}
    # One time budget for all parts of this person's message. Constant parts run no code, and reading the
    # thread's CPU clock is a system call (~8 % of planning a plain inline message): only real templates pay it.
    dynamic = any(not isinstance(template, _ConstantPart) for template in compiled.templates.values())
    ends_at = deadline() if dynamic else math.inf
    for part, template in compiled.templates.items():
        result = _render_part(part, template, context, ends_at)
        if isinstance(result, Held):
            return result
        parts[part] = result
    return _checked(parts, find_fallbacks_used(compiled.needs, values))


def _checked(parts: dict[str, str], fallbacks_used: tuple[str, ...]) -> Rendered | Held:
    """What every rendered message passes before it may leave: a one-line subject and no leftovers."""
    subject = parts.get("email.subject", "")
    if "\r" in subject or "\n" in subject:
        return Held("newline_in_subject", part="email.subject")
    leftover = first_leftover(parts)
    if leftover is not None:
        return Held(leftover.reason, part=leftover.part)
    return Rendered(parts, fallbacks_used)


def _literal_parts(spec: TemplateSpec) -> dict[str, str] | None:
    """The parts in compile order when none has template syntax (inline API content, mostly), else None.
    Such a template reads no variable, so rendering it is the leftover check alone; an oversized part goes
    the compiling way, which refuses it."""
    parts = {name: spec.parts[name] for name in sorted(spec.parts)}
    if all(len(source) <= MAX_SOURCE_CHARS and _is_literal(source) for source in parts.values()):
        return parts
    return None


def render_template(spec: TemplateSpec, values: Mapping[str, object]) -> Rendered | Held:
    """Rendered, or Held(reason) when a variable is missing or a placeholder would leak."""
    literal = _literal_parts(spec)
    if literal is not None:
        # Every inline message has its own text, so compiling it would only fill the compile cache with
        # entries never read again; the result is the same (a property test compares both ways).
        return _checked(literal, ())
    return render_compiled(compile_template(spec), values)
