"""`gpucloud instance ...`: what operators need to see of customers' instances."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
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


COMMANDS = [instance]
