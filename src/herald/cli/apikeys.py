"""`herald apikey …`: keys for the HTTP API."""

from __future__ import annotations

import typer

from herald.apikeys import service
from herald.cli.common import begin, console, runtime

apikey_app = typer.Typer(help="API keys for the HTTP API (Authorization: Bearer <key>).", no_args_is_help=True)


@apikey_app.command("create")
def create(name: str = typer.Option(..., "--name", help="What the key is for.")) -> None:
    """Create a key and print it once; only its hash is stored."""
    with runtime() as rt, begin(rt) as uow:
        key = service.create_key(uow, name)
    console.print(f"API key {key.id} ({key.name}); shown once, store it now:")
    print(key.secret)


@apikey_app.command("list")
def list_() -> None:
    """List keys (never their secrets)."""
    with runtime() as rt:
        for row in service.list_keys(rt.engine):
            state = "revoked" if row["revoked_at"] else "active"
            console.print(f"{row['id']}\t{row['prefix']}…\t{row['name']}\t{state}")


@apikey_app.command("revoke")
def revoke(key_id: int = typer.Argument(..., help="The key's id from `herald apikey list`.")) -> None:
    """Revoke a key at once."""
    with runtime() as rt, begin(rt) as uow:
        service.revoke_key(uow, key_id)
    console.print(f"revoked key {key_id}")


def register(app: typer.Typer) -> None:
    app.add_typer(apikey_app, name="apikey")
