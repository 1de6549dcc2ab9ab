"""`gpucloud flags ...`: roll features out (off -> staff -> percent -> on), grant or refuse
them per account, retire old flags, and read who changed what and why."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import cli_actor, emit_json, emit_table, json_option, parse_moment
from gpucloud.clock import linode_time
from gpucloud.domain.flags import STATES
from gpucloud.services import flags as service
from gpucloud.services.flag_cache import DEFAULT_POLL_SECONDS

why_option = click.option("--why", default="", help="The reason, kept in the audit log (required).")




def _describe(state: str, percent: int) -> str:
    return f"percent {percent}" if state == "percent" else state


def _report(change: service.Change, done: str) -> None:
    if not change.changed:
        click.echo(f"{change.key}: nothing to change")
    else:
        click.echo(f"{change.key}: {done} (every API and worker process sees it within "
                   f"{DEFAULT_POLL_SECONDS:g} s: each polls the flags version that often)")


@click.group("flags")
def flags() -> None:
    """Feature flags: ship features dark, then open them to staff, a percentage, everyone."""


@flags.command("list")
@json_option
@pass_ctx
def list_(ctx: Context, as_json: bool) -> None:
    """Every flag the code knows, its state and overrides; warns about flags to retire."""
    views = service.list_flags(ctx.state)
    if as_json:
        emit_json([v.as_dict() for v in views])
    else:
        emit_table([{"key": v.key, "state": _describe(v.state, v.percent), "overrides": _overrides_text(v),
                     "description": v.description if v.known else "(unknown to the code)"} for v in views],
                   [("key", "KEY"), ("state", "STATE"), ("overrides", "OVERRIDES"), ("description", "DESCRIPTION")])
    unknown = [v.key for v in views if not v.known]
    if unknown:
        click.echo(f"warning: the database holds flags the code does not know: {', '.join(unknown)} "
                   f"(retire them: gpucloud flags retire KEY --why TEXT)", err=True)


def _overrides_text(view: service.FlagView) -> str:
    parts = []
    for o in view.overrides:
        text = f"{'+' if o.allow else '-'}{o.account_email}"
        if o.expires_at:
            text += f" until {linode_time(o.expires_at)}" + ("" if o.active else " (expired)")
        parts.append(text)
    return " ".join(parts)


@flags.command("who")
@click.argument("key")
@click.option("--all", "everyone", is_flag=True, help="Every account, also those the flag is off for.")
@json_option
@pass_ctx
def who(ctx: Context, key: str, everyone: bool, as_json: bool) -> None:
    """Which accounts a flag is on for now, and why (a percent rollout's place 0-99, staff, overrides)."""
    rows = service.rollout(ctx.state, key)
    shown = rows if everyone else [r for r in rows if r["on"]]
    if as_json:
        emit_json(shown)
        return
    click.echo(f"{key}: on for {sum(r['on'] for r in rows)} of {len(rows)} accounts")
    emit_table(shown, [("id", "ID"), ("email", "E-MAIL"), ("on", "ON"), ("why", "WHY")])


@flags.command("set")
@click.argument("key")
@click.argument("state", type=click.Choice(STATES))
@click.option("--percent", type=int, help="With state percent: the share of accounts, 0 to 100.")
@why_option
@pass_ctx
def set_(ctx: Context, key: str, state: str, percent: int | None, why: str) -> None:
    """Set a flag's state: off, staff, percent (with --percent N) or on."""
    change = service.set_state(ctx.db, key, state, percent, why=why, actor=cli_actor())
    before, after = change.before, change.after
    if before is None or after is None:
        raise RuntimeError(f"flag {key}: setting its state reported no state")
    _report(change, f"{_describe(before['state'], before['percent'])} -> {_describe(after['state'], after['percent'])}")


until_option = click.option("--until", help="UTC date or time when the override stops counting, e.g. 2026-07-01.")


@flags.command("allow")
@click.argument("key")
@click.argument("account")
@until_option
@why_option
@pass_ctx
def allow(ctx: Context, key: str, account: str, until: str | None, why: str) -> None:
    """Turn a flag on for one account (id or e-mail), whatever its state; --until for a trial."""
    change = service.allow(ctx.db, key, account, until=parse_moment("--until", until), why=why, actor=cli_actor())
    _report(change, f"allowed for account {account}" + (f" until {until}" if until else ""))


@flags.command("deny")
@click.argument("key")
@click.argument("account")
@until_option
@why_option
@pass_ctx
def deny(ctx: Context, key: str, account: str, until: str | None, why: str) -> None:
    """Turn a flag off for one account (id or e-mail), whatever its state, staff included."""
    change = service.deny(ctx.db, key, account, until=parse_moment("--until", until), why=why, actor=cli_actor())
    _report(change, f"denied for account {account}" + (f" until {until}" if until else ""))


@flags.command("clear")
@click.argument("key")
@click.argument("account")
@why_option
@pass_ctx
def clear(ctx: Context, key: str, account: str, why: str) -> None:
    """Remove an account's override: the flag's state decides again."""
    change = service.clear(ctx.db, key, account, why=why, actor=cli_actor())
    _report(change, f"override of account {account} removed")


@flags.command("retire")
@click.argument("key")
@why_option
@pass_ctx
def retire(ctx: Context, key: str, why: str) -> None:
    """Delete a flag the code no longer knows, with its overrides."""
    change = service.retire(ctx.db, key, why=why, actor=cli_actor())
    _report(change, "retired")


@flags.command("history")
@click.argument("key", required=False)
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@json_option
@pass_ctx
def history(ctx: Context, key: str | None, limit: int, as_json: bool) -> None:
    """Who changed which flag, when, from what to what, and why (newest first)."""
    entries = service.history(ctx.db, key, limit)
    if as_json:
        emit_json(entries)
        return
    emit_table([{**e, "at": linode_time(e["at"]), "change": f"{_brief(e['before'])} -> {_brief(e['after'])}"}
                for e in entries],
               [("at", "AT (UTC)"), ("actor", "WHO"), ("action", "ACTION"), ("key", "FLAG"), ("change", "CHANGE"),
                ("why", "WHY")])


def _brief(value: dict | None) -> str:
    if value is None:
        return "-"
    if "account_id" in value:
        verb = "allow" if value["allow"] else "deny"
        until = f" until {value['expires_at']}" if value.get("expires_at") else ""
        return f"{verb} account {value['account_id']}{until}"
    return _describe(value["state"], value["percent"])


COMMANDS = [flags]
