"""`gpucloud instance ...`: what operators need to see of customers' instances."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, json_option
from gpucloud.services import guests


@click.group("instance")
def instance() -> None:
    """Customer instances, as the hosts see them."""


@instance.command("xml")
@click.argument("instance_id", type=int)
@pass_ctx
def xml(ctx: Context, instance_id: int) -> None:
    """The libvirt domain XML of an instance, built from its claims."""
    click.echo(guests.domain_xml(ctx.db, instance_id))


@instance.command("seed")
@click.argument("instance_id", type=int)
@json_option
@pass_ctx
def seed(ctx: Context, instance_id: int, as_json: bool) -> None:
    """The cloud-init seed the instance's guest is given: meta-data, user-data and network-config
    (`--json`: an object with those keys, each the file's text)."""
    files = guests.seed_files(ctx.db, instance_id)
    if as_json:
        emit_json(files)
        return
    for name, text in files.items():
        click.echo(f"--- {name}")
        click.echo(text.rstrip("\n"))


COMMANDS = [instance]
