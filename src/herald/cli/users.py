"""`herald users …`: operator accounts from the command line (first admin, listing, 2FA reset)."""

from __future__ import annotations

import sys

import typer

from herald.auth import users
from herald.cli.common import begin, console, err_console, runtime

users_app = typer.Typer(help="Operator accounts for the web UI.", no_args_is_help=True)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@users_app.command("create")
def create(
    email: str = typer.Argument(..., help="The operator's e-mail address (their sign-in name)."),
    admin: bool = typer.Option(False, "--admin", help="Make the account an admin."),
    role: str = typer.Option("agent", "--role", help="admin | marketer | agent (ignored with --admin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
) -> None:
    """Create an account; its owner sets up two-factor sign-in at first sign-in."""
    password = _read_password(password_stdin)
    with runtime() as rt, begin(rt) as uow:
        user = users.create_user(uow, email=email, password=password, role="admin" if admin else role)
    console.print(f"created {user.role} {user.email} (id {user.id}); 2FA enrolment happens at first sign-in")


@users_app.command("list")
def list_() -> None:
    """List accounts with their role and 2FA state (never any secret)."""
    with runtime() as rt:
        accounts = users.list_users(rt.engine)
    if not accounts:
        err_console.print("no accounts yet: open the web UI for set-up, or run `herald users create --admin EMAIL`")
    for user in accounts:
        if user.totp_enrolled:
            state = "2fa:enrolled"
        elif user.totp_required:
            state = "2fa:pending"
        else:
            state = "2fa:not-required"
        console.print(f"{user.id}\t{user.email}\t{user.role}\t{state}")


@users_app.command("reset-2fa")
def reset_2fa(email: str = typer.Argument(..., help="Whose second factor to remove.")) -> None:
    """Remove an account's authenticator and recovery codes and sign it out; it enrols again."""
    with runtime() as rt:
        user = users.find_user(rt.engine, email)
        if user is None:
            err_console.print(f"[bold red]error[/] (not_found): no account {email}")
            raise typer.Exit(1)
        with begin(rt) as uow:
            users.reset_2fa(uow, user.id)
    console.print(f"2FA reset for {user.email}; they enrol again at next sign-in")


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
