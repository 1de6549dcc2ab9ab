"""Printing for people (tables) and for scripts (`--json`)."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Sequence
from datetime import datetime

import click
from rich.console import Console
from rich.table import Table

from gpucloud.catalog import load_catalog
from gpucloud.errors import GpucloudError

# Piped output (scripts, tests) is never cut to a guessed terminal width.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 240)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of a table.")


def emit_json(value) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def emit_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """`columns` are (key, heading) pairs; values are printed as they are."""
    if not rows:
        click.echo("(none)")
        return
    table = Table(title=title, show_edge=False, header_style="bold", pad_edge=False)
    for _, heading in columns:
        table.add_column(heading)
    for row in rows:
        table.add_row(*("" if row.get(k) is None else _cell(row.get(k)) for k, _ in columns))
    console.print(table)


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_moment(option: str, text: str | None) -> datetime | None:
    """A date or date-time option (`2026-07-01`, `2026-07-01T12:00`), read as UTC."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise GpucloudError(f"{option}: not a date or time: {text!r} (e.g. 2026-07-01 or 2026-07-01T12:00)") from None


def fail(message: str, code: int = 1) -> None:
    """One line on stderr, no traceback."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def region_id(text: str | None) -> str | None:
    """A region as typed (its id or its city: 'ap-west', 'Mumbai', 'mumbai, in') -> its id;
    None stays None; anything else is refused, naming the regions there are."""
    if text is None:
        return None
    catalog = load_catalog()
    region = catalog.find_region(text)
    if region is None:
        known = ", ".join(f"{r.id} ({r.label})" for r in catalog.regions)
        raise GpucloudError(f"unknown region {text!r}; known: {known}", field="region")
    return region.id


def region_option(help_text: str, *, required: bool = False):
    """`--region`, accepting an id or a city name (see `region_id`)."""
    return click.option("--region", required=required, help=help_text + " An id or a city, e.g. ap-west or Mumbai.",
                        callback=lambda _ctx, _param, value: region_id(value))


def cli_actor() -> str:
    """Who ran the command, as the audit log records it."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"
