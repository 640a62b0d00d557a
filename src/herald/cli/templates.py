"""`herald templates list|show|create|preview`: stored, versioned templates from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from herald.cli.common import begin, console, runtime
from herald.core.channels import describe_part_names
from herald.delivery import preview as previews
from herald.templates import store

templates_app = typer.Typer(help="Stored templates: immutable numbered versions per channel.", no_args_is_help=True)


def _print_json(value: Any) -> None:
    # Data, not rich markup: "[First Name]" in a template must come out as written.
    console.print(json.dumps(value, default=str, indent=2, ensure_ascii=False), markup=False, emoji=False)


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    bad = [item for item in items if "=" not in item or not item.split("=", 1)[0].strip()]
    if bad:
        raise typer.BadParameter(f"expected NAME=VALUE, got {bad[0]!r}", param_hint=option)
    return [(name.strip(), value) for name, value in (item.split("=", 1) for item in items)]


def _parts(items: list[str]) -> dict[str, str]:
    """`name=text`, or `name=@file` to read the part from a file (UTF-8)."""
    parts: dict[str, str] = {}
    for name, value in _pairs(items, "--part"):
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                value = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--part") from exc
        parts[name] = value
    return parts


@templates_app.command("list")
def list_templates(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Every stored template with its latest version and the parts it has."""
    with runtime() as rt:
        found = store.list_templates(rt.engine)
    if as_json:
        _print_json(found)
        return
    if not found:
        console.print("No templates yet: `herald templates create ID --part email.subject=… --part email.text=@file`.")
        return
    table = Table("id", "latest", "parts", "fallbacks", "updated")
    for item in found:
        fallbacks = ", ".join(f"{k}={v}" if v is not None else k for k, v in item["variables"].items())
        table.add_row(
            item["id"],
            f"v{item['latest_version']}",
            ", ".join(sorted(item["parts"])),
            fallbacks or "—",
            item["updated_at"].strftime("%Y-%m-%d %H:%M UTC"),
        )
    console.print(table)


@templates_app.command("show")
def show(
    template_id: str = typer.Argument(..., help="The template id."),
    version: int | None = typer.Option(None, "--version", help="One version (default: every version)."),
) -> None:
    """A template's versions (parts and fallbacks) as JSON."""
    with runtime() as rt:
        versions = store.template_versions(rt.engine, template_id)
    if version is not None:
        versions = [v for v in versions if v["version"] == version]
        if not versions:
            console.print(f"[bold red]error[/] (not_found): template {template_id} has no version {version}.")
            raise typer.Exit(1)
    _print_json({"id": template_id, "versions": versions})


@templates_app.command("create")
def create(
    template_id: str = typer.Argument(..., help="Template id (letters, digits, . _ -); a new version if it exists."),
    part: list[str] = typer.Option(
        ..., "--part", help=f"NAME=TEXT or NAME=@FILE (repeatable); parts are named {describe_part_names()}."
    ),
    fallback: list[str] = typer.Option(
        [], "--fallback", help="VAR=VALUE: used when a person lacks VAR (repeatable); without one they are held."
    ),
) -> None:
    """Save a new immutable version (vetted and compiled first: a broken template is refused)."""
    parts = _parts(part)
    variables: dict[str, str | None] = dict(_pairs(fallback, "--fallback"))
    with runtime() as rt, begin(rt) as uow:
        saved = store.save_version(uow, template_id, parts, variables)
    _print_json({"id": saved["id"], "version": saved["version"]})


@templates_app.command("preview")
def preview(
    template_id: str = typer.Argument(..., help="The template id."),
    person: int = typer.Option(..., "--person", help="The person's id whose data fills the template."),
    version: int | None = typer.Option(None, "--version", help="A stored version (default: the latest)."),
) -> None:
    """Render the template for one person as the planner would; exits 3 when it would be held."""
    with runtime() as rt:
        result = previews.preview_template(rt.engine, template_id, person, version=version)
    _print_json(result.as_dict())
    if result.held:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.add_typer(templates_app, name="templates")
