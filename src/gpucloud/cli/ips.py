"""`gpucloud ip ...`: the address pools guests are given addresses from."""

from __future__ import annotations

from dataclasses import asdict

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, emit_table, json_option
from gpucloud.services import addresses

POOL_COLUMNS = (("id", "ID"), ("region", "REGION"), ("family", "FAMILY"), ("network", "NETWORK"),
                ("gateway", "GATEWAY"), ("first", "FIRST"), ("last", "LAST"), ("assigned", "ASSIGNED"),
                ("free", "FREE"))


def _row(pool: addresses.PoolUsage) -> dict:
    row = {**asdict(pool), "free": pool.free, "prefix": int(pool.network.split("/")[1])}
    if pool.family == "ipv6":  # one SLAAC address per guest: the /64 does not run out
        row["size"] = row["free"] = None
    return row


@click.group("ip")
def ip() -> None:
    """Guest address pools: a range of a network with its gateway, per region."""


@ip.command("add")
@click.argument("region")
@click.argument("network")
@click.option("--gateway", help="The guests' gateway (default: the network's first host address).")
@click.option("--first", help="First address handed out (default: the one after the gateway).")
@click.option("--last", help="Last address handed out (default: the last host address).")
@json_option
@pass_ctx
def add(ctx: Context, region: str, network: str, gateway: str | None, first: str | None, last: str | None,
        as_json: bool) -> None:
    """Add NETWORK (CIDR: 203.0.113.0/24; IPv6: a /64) to REGION's pools. Guests take the lowest
    free IPv4 address of the range, and a SLAAC address in the region's IPv6 /64."""
    pool = addresses.add_pool(ctx.db, region, network, gateway=gateway, first=first, last=last, actor="cli")
    if as_json:
        emit_json(_row(pool))
    else:
        click.echo(f"pool {pool.id}: {pool.region} {pool.network}, {pool.first}-{pool.last} via {pool.gateway}")


@ip.command("list")
@click.option("--region", help="Only this region's pools.")
@json_option
@pass_ctx
def list_pools(ctx: Context, region: str | None, as_json: bool) -> None:
    """Every pool, with how many of its addresses instances hold."""
    rows = [_row(p) for p in addresses.pools(ctx.db, region)]
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, POOL_COLUMNS)


@ip.command("usage")
@click.option("--region", help="Only this region.")
@json_option
@pass_ctx
def usage(ctx: Context, region: str | None, as_json: bool) -> None:
    """IPv4 addresses per region: how many the pools hold, how many are assigned, how many are free
    (a region with none free refuses creates: "No capacity")."""
    totals: dict[str, dict] = {}
    for pool in addresses.pools(ctx.db, region):
        if pool.family != "ipv4":
            continue
        row = totals.setdefault(pool.region, {"region": pool.region, "pools": 0, "size": 0, "assigned": 0,
                                              "free": 0})
        row["pools"] += 1
        row["size"] += pool.size
        row["assigned"] += pool.assigned
        row["free"] += pool.free
    rows = list(totals.values())
    if as_json:
        emit_json(rows)
    else:
        emit_table(rows, (("region", "REGION"), ("pools", "POOLS"), ("size", "ADDRESSES"), ("assigned", "ASSIGNED"),
                          ("free", "FREE")))


COMMANDS = [ip]
