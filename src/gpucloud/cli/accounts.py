"""`gpucloud account ...` and `gpucloud token ...`: customers, staff and their API tokens."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, emit_table, json_option, parse_moment
from gpucloud.services import account_admin
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


@account.command("list")
@click.argument("query", required=False, default="")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_ctx
def list_(ctx: Context, query: str, limit: int, as_json: bool) -> None:
    """Accounts whose e-mail or company contains QUERY (or whose id it is); all of them without one."""
    rows = account_admin.search(ctx.state, query, limit)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["kind"] = "staff" if r["is_staff"] else "customer"
    emit_table(rows, [("id", "ID"), ("email", "E-MAIL"), ("company", "COMPANY"), ("kind", "KIND"),
                      ("active", "ACTIVE"), ("created", "CREATED")])


@account.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def show(ctx: Context, ref: str, as_json: bool) -> None:
    """One account (id or e-mail): its users, its instances with their GPUs, and each feature flag's answer for it."""
    d = account_admin.overview(ctx.state, ref)
    if as_json:
        emit_json({**d, "flags": [{**f, "override": f["override"].__dict__ if f["override"] else None}
                                  for f in d["flags"]]})
        return
    click.echo(f"account {d['id']} {d['email']} · {'staff' if d['is_staff'] else 'customer'}"
               f"{' · ' + d['company'] if d['company'] else ''} · {'active' if d['active'] else 'inactive'}")
    click.echo("users: " + (", ".join(u["username"] for u in d["users"]) or "none"))
    instances = d["instances"]
    click.echo(f"instances: {len(instances)}" + ("" if instances else " (none)"))
    for i in instances:
        gpus = f" · {i['gpu_count']}× {i['gpu_model']}" if i["gpu_count"] else ""
        click.echo(f"  {i['id']} {i['label']} · {i['status']} · {i['type']} · {i['region']}{gpus} · "
                   f"host {i['host'] or '-'}")
    click.echo("flags: " + ", ".join(f"{f['key']} {'on' if f['enabled'] else 'off'}" for f in d["flags"]))


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
