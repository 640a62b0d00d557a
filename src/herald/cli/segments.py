"""`herald segments list|create|show|count|preview`: saved segments and live counts from the shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from herald.cli.common import begin, console, runtime
from herald.core.errors import InvalidInputError
from herald.segments import service

segments_app = typer.Typer(
    help="Segments: saved filters over people, counted and previewed live.", no_args_is_help=True
)

DefinitionOption = Annotated[
    str | None,
    typer.Option("--definition", help="The filter tree as JSON, or @FILE to read it from a file (docs/segments.md)."),
]


def _definition(value: str) -> dict[str, Any]:
    """JSON given inline or as @FILE; a bad one is invalid input (exit 1 with the reason)."""
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"Cannot read {path}: {exc.strerror}", field="definition") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"The definition is not JSON: {exc}", field="definition") from exc
    if not isinstance(data, dict):
        raise InvalidInputError("The definition is a JSON object (a group or a condition).", field="definition")
    return data


@segments_app.command("list")
def list_segments() -> None:
    """Every saved segment: id, name, members now."""
    with runtime() as rt:
        table = Table("id", "name", "members", "updated")
        found = service.list_segments(rt.engine)
        for segment in found:
            count = service.count_definition(rt.engine, segment.definition, rt.clock.now())
            table.add_row(str(segment.id), segment.name, str(count), f"{segment.updated_at:%Y-%m-%d %H:%M}")
        console.print(table if found else "no segments")


@segments_app.command("create")
def create_segment(
    name: Annotated[str, typer.Argument(help="A unique name.")],
    definition: DefinitionOption = None,
) -> None:
    """Save a segment; prints its id and how many people match now."""
    with runtime() as rt:
        if definition is None:
            raise InvalidInputError("Give the filter with --definition JSON or --definition @FILE.", field="definition")
        data = _definition(definition)
        with begin(rt) as uow:
            segment = service.create_segment(uow, name, data)
        count = service.count_segment(rt.engine, segment.id, rt.clock.now())
    console.print(f"segment {segment.id} {segment.name!r}: {count} people")


@segments_app.command("show")
def show_segment(segment_id: Annotated[int, typer.Argument(min=1, help="The segment's id.")]) -> None:
    """One segment as JSON, with its count now (the body of GET /api/segments/{id})."""
    with runtime() as rt:
        body = service.find_segment(rt.engine, segment_id).as_dict()
        body["count"] = service.count_segment(rt.engine, segment_id, rt.clock.now())
    console.print_json(json.dumps(body))


@segments_app.command("count")
def count(
    segment_id: Annotated[int | None, typer.Argument(min=1, help="A saved segment's id.")] = None,
    definition: DefinitionOption = None,
) -> None:
    """How many active people match a saved segment, or an unsaved --definition."""
    with runtime() as rt:
        if (segment_id is None) == (definition is None):
            raise InvalidInputError("Give a segment id or --definition (one of them).", field="definition")
        if segment_id is not None:
            found = service.count_segment(rt.engine, segment_id, rt.clock.now())
        else:
            assert definition is not None
            found = service.count_definition(rt.engine, _definition(definition), rt.clock.now())
    console.print(str(found))


@segments_app.command("preview")
def preview(
    segment_id: Annotated[int, typer.Argument(min=1, help="The segment's id.")],
    limit: Annotated[int, typer.Option(min=1, max=service.MAX_PREVIEW, help="How many people.")] = 20,
) -> None:
    """The first matching people: id, name, e-mail, country, time zone."""
    with runtime() as rt:
        people = service.preview_segment(rt.engine, segment_id, rt.clock.now(), limit=limit)
    table = Table("id", "name", "email", "country", "zone")
    for person in people:
        name = " ".join(p for p in (person["first_name"], person["last_name"]) if p)
        table.add_row(str(person["id"]), name, person["email"] or "", person["country"] or "", person["timezone"] or "")
    console.print(table if people else "no one matches")


def register(app: typer.Typer) -> None:
    app.add_typer(segments_app, name="segments")
