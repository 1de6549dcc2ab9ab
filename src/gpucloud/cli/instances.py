"""`gpucloud instance ...`: what operators need to see of customers' instances, and the one-click boot."""

from __future__ import annotations

import time

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import cli_actor, emit_json, emit_table, json_option, region_option
from gpucloud.services import guests, instance_admin


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


@instance.command("list")
@click.argument("query", required=False, default="")
@region_option("Only instances of this region.")
@click.option("--model", "gpu_model", help="Only instances of plans with this GPU model, e.g. h100.")
@click.option("--status", help="Only instances in this status, e.g. running.")
@click.option("--account", "account_ref", help="Only this account's instances (id or e-mail).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@json_option
@pass_ctx
def list_(ctx: Context, query: str, region: str | None, gpu_model: str | None, status: str | None,
          account_ref: str | None, limit: int, as_json: bool) -> None:
    """Instances, newest first; QUERY is an id, part of a label, a host name or a GPU address."""
    rows = instance_admin.search(ctx.state, query, limit, region=region, gpu_model=gpu_model, status=status,
                                 account=account_ref)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["gpu"] = f"{r['gpu_count']}× {r['gpu_model']}" if r["gpu_count"] else "-"
    emit_table(rows, [("id", "ID"), ("label", "LABEL"), ("status", "STATUS"), ("type", "PLAN"), ("gpu", "GPUS"),
                      ("region", "REGION"), ("host", "HOST"), ("account", "ACCOUNT")])


@instance.command("show")
@click.argument("instance_id", type=int)
@json_option
@pass_ctx
def show(ctx: Context, instance_id: int, as_json: bool) -> None:
    """One instance: owner, host, the GPUs, cores and memory it holds, its jobs and events."""
    d = instance_admin.detail(ctx.state, instance_id)
    if as_json:
        emit_json(d)
        return
    click.echo(f"instance {d['id']} {d['label']} · {d['status']} · {d['type']} · {d['region']} · "
               f"host {d['host'] or '-'} · account {d['account']} ({d['account_id']})")
    for g in d["gpus"]:
        click.echo(f"  GPU {g['address']} {g['model']} · NUMA node {g['numa_node']} · IOMMU group {g['iommu_group']}")
    for m in d["memory"]:
        click.echo(f"  NUMA node {m['node']}: CPUs {m['cpus'] or '-'} · {m['memory_mib'] // 1024} GiB")
    for j in d["jobs"]:
        click.echo(f"  job {j['id']} {j['kind']} · {j['state']}")


@instance.command("boot")
@click.option("--account", "account_ref", required=True, help="The customer's account (id or e-mail).")
@click.option("--plan", required=True, help="The plan, e.g. g1-gpu-rtx6000-1.")
@region_option("Where to boot it.", required=True)
@click.option("--image", default="linode/ubuntu24.04", show_default=True,
              help="The image; '' for an instance without a disk image.")
@click.option("--label", help="Its label (default: chosen like the API does).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow its progress until it runs or fails (a worker must be running).")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to follow the progress.")
@json_option
@pass_ctx
def boot(ctx: Context, account_ref: str, plan: str, region: str, image: str, label: str | None, wait: bool,
         timeout: float, as_json: bool) -> None:
    """One-click boot for a customer: the same validation, placement and job as the API; the
    feature flags do not hold operators back (the audit log says when they would have)."""
    booted = instance_admin.boot_for_account(ctx.db, ctx.settings, account_ref, plan=plan, region=region,
                                             image=image or None, label=label, actor=cli_actor())
    if not as_json:
        click.echo(f"instance {booted.instance_id} {booted.label} created for {account_ref}"
                   + (" (its account's flags alone would have refused it)" if booted.flags_bypassed else ""))
        if booted.root_password:
            click.echo(f"root password (shown once): {booted.root_password}")
        if booted.password_link:
            click.echo(f"or send the customer this link, which shows it once: "
                       f"{ctx.settings.resolved_public_url}{booted.password_link}")
    progress = instance_admin.progress(ctx.db, booted.instance_id)
    deadline = time.monotonic() + timeout
    last = None
    while wait and not progress["done"] and time.monotonic() < deadline:
        line = f"{progress['status']} {progress['percent']}%"
        if line != last and not as_json:
            click.echo(line, err=True)
            last = line
        time.sleep(0.5)
        progress = instance_admin.progress(ctx.db, booted.instance_id)
    if as_json:
        link = ctx.settings.resolved_public_url + booted.password_link if booted.password_link else None
        emit_json({"id": booted.instance_id, "label": booted.label, "root_password": booted.root_password,
                   "password_link": link,
                   "flags_bypassed": booted.flags_bypassed, "status": progress["status"],
                   "percent": progress["percent"], "done": progress["done"], "error": progress["error"]})
        return
    if progress["done"]:
        click.echo(f"instance {booted.instance_id} is {progress['status']}"
                   + (f": {progress['error']}" if progress["error"] else ""))
    elif wait:
        click.echo(f"instance {booted.instance_id} is still {progress['status']} ({progress['percent']}%) after "
                   f"{timeout:g} s; is a worker running? `gpucloud instance show {booted.instance_id}` follows it")
    if progress["done"] and progress["error"]:
        raise SystemExit(1)


COMMANDS = [instance]
