"""`gpucloud capacity`: how many GPUs exist, are held, are free, and how many more instances
of each plan can be sold right now."""

from __future__ import annotations

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, emit_table, json_option, region_option
from gpucloud.services.capacity import capacity as capacity_rows
from gpucloud.services.capacity import pack_mix


@click.command("capacity")
@region_option("Only this region.")
@json_option
@pass_ctx
def capacity(ctx: Context, region: str | None, as_json: bool) -> None:
    """GPU inventory per region and model, and what can still be sold per plan."""
    rows = capacity_rows(ctx.state, ctx.settings, region)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["claimed_split"] = f"{r['claimed']} ({r['claimed_customer']} by customers, {r['claimed_staff']} by staff)"
        r["why_unavailable"] = ", ".join(f"{k} {v}" for k, v in sorted(r["unavailable_reasons"].items()))
        r["sell"] = "  ".join(f"{plan}: {n}" for plan, n in r["sellable"].items())
    emit_table(rows, [("region", "REGION"), ("gpu_model", "GPU"), ("total", "TOTAL"), ("claimed_split", "CLAIMED"),
                      ("free", "FREE"), ("unavailable", "UNAVAILABLE"), ("why_unavailable", "WHY"),
                      ("stranded", "STRANDED"), ("sell", "SELLABLE NOW")])
    if rows and ctx.settings.placement_policy == "pack":
        source = "placement_demand_mix" if ctx.settings.placement_demand_mix else "every GPU plan of the catalog alike"
        click.echo("\npack keeps room for this demand mix (per region: learnt from its creates; elsewhere: "
                   f"{source}):")
        mix = pack_mix(ctx.state, ctx.settings)
        shown = {(r["region"], r["gpu_model"]) for r in rows}
        for region, model in sorted(mix):
            if (region, model) in shown or (not region and any(m == model for _, m in shown)):
                shares = ", ".join(f"{plan} {share:.0%}" for plan, share in mix[(region, model)])
                click.echo(f"  {region + ' ' if region else ''}{model}: {shares}")


COMMANDS = [capacity]
