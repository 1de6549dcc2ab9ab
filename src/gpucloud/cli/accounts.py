"""`gpucloud account ...` and `gpucloud token ...`: customers, staff and their API tokens."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, json_option, parse_moment
from gpucloud.services import accounts as service


@click.group("account")
def account() -> None:
    """Customer and staff accounts."""


@account.command("create")
@click.argument("email")
@click.option("--staff", is_flag=True, help="A staff account: sees every feature in the `staff` state.")
@click.option("--username", help="Username of its first user (default: from the e-mail).")
@click.option("--company", default="")
@json_option
@pass_ctx
def create(ctx: Context, email: str, staff: bool, username: str | None, company: str, as_json: bool) -> None:
    """Create an account and its first user."""
    info = service.create_account(ctx.db, email, staff=staff, username=username, company=company)
    if as_json:
        emit_json(info.__dict__)
    else:
        click.echo(f"account {info.id} {info.email} (user {info.username}{', staff' if staff else ''})")


@click.group("token")
def token() -> None:
    """Personal access tokens for the public API."""


@token.command("create")
@click.option("--account", "account_ref", required=True, help="Account id or e-mail.")
@click.option("--scopes", default="*", show_default=True,
              help="Space or comma separated, e.g. 'linodes:read_write events:read_only'.")
@click.option("--label", default="")
@click.option("--expiry", help="UTC date or time when the token stops working, e.g. 2027-01-31.")
@json_option
@pass_ctx
def create_token(ctx: Context, account_ref: str, scopes: str, label: str, expiry: str | None, as_json: bool) -> None:
    """Create a token; its secret is printed once and only its hash is kept."""
    expires_at = parse_moment("--expiry", expiry)
    new = service.create_token(ctx.db, account_ref, scopes=scopes, label=label, expires_at=expires_at)
    if as_json:
        emit_json({"id": new.id, "token": new.secret, "scopes": new.scopes,
                   "expiry": new.expires_at.isoformat() if new.expires_at else None})
    else:
        click.echo(new.secret)


@click.group("admin")
def admin() -> None:
    """Operators who log in to the admin web interface."""


@admin.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["admin", "support"]), default="admin", show_default=True,
              help="support is read-only.")
@click.password_option(help="At least 10 characters (prompted when omitted).")
@pass_ctx
def create_admin(ctx: Context, username: str, role: str, password: str) -> None:
    """Create an admin-interface login."""
    service.create_admin(ctx.db, username, password, role)
    click.echo(f"admin user {username} ({role}) created")


COMMANDS = [account, token, admin]
