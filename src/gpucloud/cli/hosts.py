"""`gpucloud host ...`: register, list, show, drain and inspect hypervisor hosts."""

from __future__ import annotations

import re
import string
from pathlib import Path

import click

from gpucloud.cli import Context, pass_ctx
from gpucloud.cli.output import emit_json, emit_table, json_option, region_option
from gpucloud.domain.topology import TopologyError, normalise_pci_address, numa_summary
from gpucloud.errors import GpucloudError
from gpucloud.services import hosts as service


@click.group("host")
def host() -> None:
    """Hypervisor hosts: register, list, show topology, drain."""


@host.command("add")
@click.option("--profile", help="Register a simulated host described by a profile file (or a shipped profile name).")
@click.option("--uri", help="Register a real host by libvirt URI (qemu:///system, qemu+tls://host/system).")
@region_option("The host's region.", required=True)
@click.option("--name", help="Host name (default: derived from the URI or profile).")
@click.option("--nic", help="libvirt hosts: guest network, 'network:NAME', 'bridge:NAME' or 'user' "
                            "(default network:default).")
@click.option("--domain-type", type=click.Choice(["kvm", "qemu"]),
              help="libvirt hosts: 'qemu' runs guests in software emulation (hosts without KVM, CI).")
@click.option("--pool-path", help="libvirt hosts: directory of the storage pool for disks and base images.")
@click.option("--gpu-node", "gpu_nodes", multiple=True, metavar="ADDRESS=NODE",
              help="The NUMA node of a GPU whose firmware reports -1 (host inspect finds it in local_cpulist "
                   "and prints this option); repeat per GPU.")
@json_option
@pass_ctx
def add(ctx: Context, profile: str | None, uri: str | None, region: str, name: str | None, nic: str | None,
        domain_type: str | None, pool_path: str | None, gpu_nodes: tuple[str, ...], as_json: bool) -> None:
    """Register a host: discover its topology and write it, or refuse if it is already known.

    --profile also takes a recorded host: a directory with capabilities.xml and nodedev/*.xml
    (virsh capabilities, virsh nodedev-dumpxml) or a copy of a host's /sys and /proc."""
    if bool(profile) == bool(uri):
        raise GpucloudError("give exactly one of --profile FILE or --uri URI")
    given = _gpu_nodes(gpu_nodes)
    if profile:
        from gpucloud.hypervisor.profile import load_profile

        topology = load_profile(profile)
        recorded = Path(profile).is_dir()
        profile_name = str(Path(profile).resolve()) if recorded else Path(profile).stem
        name = name or _next_name(ctx, region, Path(profile).stem if recorded else profile_name)
        ref = service.register_host(ctx.db, ctx.settings, name=name, region=region, topology=topology,
                                    driver="sim", profile=profile_name, gpu_nodes=given)
    else:
        if not uri:  # refused above: exactly one of the two is given
            raise GpucloudError("give exactly one of --profile FILE or --uri URI")
        from gpucloud.hypervisor.libvirt_driver import LibvirtDriver

        options = {k: v for k, v in (("nic", nic), ("domain_type", domain_type), ("pool_path", pool_path)) if v}
        driver = LibvirtDriver(uri, timeout_s=ctx.settings.driver_timeout_seconds)
        try:
            topology = driver.discover()
        finally:
            driver.close()
        name = name or _name_from_uri(uri)
        ref = service.register_host(ctx.db, ctx.settings, name=name, region=region, topology=topology,
                                    driver="libvirt", uri=uri, host_settings=options, gpu_nodes=given)
    detail = service.host_detail(ctx.db, ref.id, ctx.settings)
    if as_json:
        emit_json(detail)
        return
    gpus = sum(len(n["gpus"]) for n in detail["nodes"]) + len(detail["gpus_unknown_node"])
    cpus = sum(len(n["cpus"]) for n in detail["nodes"])
    memory_only = sum(n["memory_only"] for n in detail["nodes"])
    click.echo(f"registered host {ref.name} (id {ref.id}) in {region}: "
               f"{numa_summary(len(detail['nodes']) - memory_only, memory_only)}, {cpus} CPUs, {gpus} GPUs")


def _gpu_nodes(values: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        address, _, node = value.partition("=")
        try:
            out[normalise_pci_address(address)] = int(node)
        except (TopologyError, ValueError):
            raise GpucloudError(f"--gpu-node {value!r}: expected ADDRESS=NODE, e.g. 0000:3b:00.0=0",
                                field="gpu_node") from None
    return out


def _name_from_uri(uri: str) -> str:
    match = re.match(r"^[\w+]+://(?:[^@/]*@)?([^/:?]*)", uri)
    hostname = match.group(1) if match else ""
    return hostname or "localhost"


def _next_name(ctx: Context, region: str, profile: str) -> str:
    taken = {h["name"] for h in service.list_hosts(ctx.db, region)}
    n = 1
    while f"{region}-{profile}-{n:02d}" in taken:
        n += 1
    return f"{region}-{profile}-{n:02d}"


@host.command("list")
@region_option("Only hosts of this region.")
@json_option
@pass_ctx
def list_(ctx: Context, region: str | None, as_json: bool) -> None:
    """Every host with its status and GPU use."""
    rows = service.list_hosts(ctx.state, region, ctx.settings)
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        r["use"] = f"{r['gpus_claimed']}/{r['gpus']}"
        r["source"] = r["uri"] or f"sim:{r['profile']}"
    emit_table(rows, [("id", "ID"), ("name", "NAME"), ("region", "REGION"), ("status", "STATUS"),
                      ("gpu_models", "GPU MODELS"), ("use", "GPUS USED"), ("source", "SOURCE")])


@host.command("show")
@click.argument("ref")
@json_option
@pass_ctx
def show(ctx: Context, ref: str, as_json: bool) -> None:
    """A host's topology: NUMA nodes, their cores, memory and GPUs, and who holds what."""
    detail = service.host_detail(ctx.state, ref, ctx.settings)
    if as_json:
        emit_json(detail)
        return
    click.echo(render_topology(detail))


def render_topology(d: dict) -> str:
    """A text picture of the host. Each core is one character: '.' free, 'r' kept for the host,
    a letter for the instance that holds it (see the legend)."""
    letters = iter(string.ascii_uppercase + string.ascii_lowercase.replace("r", "") + string.digits)
    legend: dict[int, str] = {}

    def mark(holder: dict | None) -> str:
        if holder is None:
            return "."
        if holder["instance_id"] not in legend:
            legend[holder["instance_id"]] = next(letters, "*")
        return legend[holder["instance_id"]]

    lines = [f"host {d['name']} (id {d['id']}) · {d['region']} · "
             f"{d['driver']}{' ' + d['uri'] if d['uri'] else ' profile ' + str(d['profile'])} · {d['status'].upper()}"
             + (f" ({d['status_reason']})" if d["status_reason"] else ""),
             f"cpu: {d['cpu_model'] or 'unknown'} · {d['threads_per_core']} thread(s) per core", ""]
    holders: dict[int, dict] = {}
    for node in d["nodes"]:
        gib = node["memory_mib"] // 1024
        if node["memory_only"]:
            lines += [f"NUMA node {node['index']} · memory-only: {gib} GiB, no CPUs; never a guest's RAM", ""]
            continue
        lines.append(f"NUMA node {node['index']} · memory {gib} GiB, {node['reserved_memory_mib'] // 1024} GiB for the "
                     f"host, {node['memory_claimed_mib'] // 1024} GiB claimed · 1 GiB pages "
                     f"{node['hugepages_claimed']}/{node['hugepages_1g']} claimed"
                     + (f" · {node['shared_vcpus']} shared vCPUs" if node["shared_vcpus"] else ""))
        cores: dict[tuple, list[dict]] = {}
        for cpu in node["cpus"]:
            cores.setdefault(tuple(sorted(cpu["siblings"])), []).append(cpu)
        row = []
        for threads in cores.values():
            cpu = threads[0]
            if cpu["reserved"]:
                row.append("r")
            else:
                held = next((t["holder"] for t in threads if t["holder"]), None)
                if held:
                    holders[held["instance_id"]] = held
                row.append(mark(held))
        free = row.count(".")
        lines.append(
            f"  cores ({len(row)}, {free} free): " + " ".join("".join(row[i : i + 8]) for i in range(0, len(row), 8))
        )
        for gpu in node["gpus"]:
            lines.append("  " + _gpu_line(gpu, mark, holders))
        lines.append("")
    if d["gpus_unknown_node"]:
        lines.append("GPUs on an unknown NUMA node (firmware reports -1):")
        for gpu in d["gpus_unknown_node"]:
            lines.append("  " + _gpu_line(gpu, mark, holders))
        lines.append("")
    if legend:
        lines.append("legend: r = kept for the host, . = free")
        for iid, letter in legend.items():
            h = holders.get(iid, {})
            lines.append(f"  {letter} = instance {iid} {h.get('label', '')} ({h.get('account', '?')}"
                         f"{', staff' if h.get('staff') else ''})")
    return "\n".join(lines).rstrip()


def _gpu_line(gpu: dict, mark, holders: dict) -> str:
    state = gpu["status"]
    if gpu["status_reason"]:
        state += f" ({gpu['status_reason']})"
    text = f"GPU {gpu['address']} {gpu['model'] or gpu['product'] or 'unknown model'} · group {gpu['iommu_group']} " \
           f"({len(gpu['functions'])} functions) · {state}"
    if gpu["numa_from"] not in ("firmware", ""):  # the firmware said -1
        text += f" · node {gpu['numa_node']} from {gpu['numa_from']}"
    if gpu["holder"]:
        holders[gpu["holder"]["instance_id"]] = gpu["holder"]
        text += f" · held by [{mark(gpu['holder'])}] instance {gpu['holder']['instance_id']}"
    if gpu["blocker"]:
        text += f" · UNPLACEABLE: {gpu['blocker']}"
    return text


def _status_command(name: str, status: str, doc: str, *, why_required: bool):
    @host.command(name, help=doc)
    @click.argument("ref")
    @click.option("--why", default="",
                  help="The reason, kept in the audit log" + (" (required)." if why_required else "."))
    @pass_ctx
    def command(ctx: Context, ref: str, why: str) -> None:
        if service.set_host_status(ctx.db, ref, status, why=why, actor="cli"):
            click.echo(f"host {ref} is now {status}")
        else:
            click.echo(f"host {ref} is already {status}; nothing changed")

    return command


_status_command("drain", "draining", "Stop placing new instances on a host; running ones stay.", why_required=True)
_status_command("maintenance", "maintenance", "Take a host out of service for maintenance.", why_required=True)
_status_command("activate", "active", "Return a host to service.", why_required=False)


@host.command("gpu")
@click.argument("ref")
@click.argument("address")
@click.argument("status", type=click.Choice(["available", "reserved", "faulty"]))
@click.option("--why", default="", help="The reason (required unless making it available).")
@pass_ctx
def gpu(ctx: Context, ref: str, address: str, status: str, why: str) -> None:
    """Mark one GPU of a host available, reserved or faulty."""
    service.set_gpu_status(ctx.db, ref, address, status, why=why, actor="cli")
    click.echo(f"GPU {address} on {ref} is now {status}")


@host.command("rediscover")
@click.argument("ref")
@json_option
@pass_ctx
def rediscover(ctx: Context, ref: str, as_json: bool) -> None:
    """Read a libvirt host's topology again: new GPUs are added, vanished ones marked faulty."""
    from gpucloud.hypervisor.drivers import driver_for
    from gpucloud.store.fleet import host_by_ref

    with ctx.db.read() as s:
        row = host_by_ref(s, ref)
    if row is None:
        raise GpucloudError(f"no host {ref}")
    changes = service.refresh_topology(ctx.db, row.id, driver_for(row, ctx.settings).discover(), actor="cli")
    if as_json:
        emit_json(changes)
    elif any(changes.values()):
        click.echo("; ".join(f"{k}: {', '.join(v)}" for k, v in changes.items() if v))
    else:
        click.echo(f"host {row.name}: nothing changed")


@host.command("lost")
@click.argument("ref")
@click.option("--why", required=True, help="What happened to it (kept in the audit log).")
@pass_ctx
def lost(ctx: Context, ref: str, why: str) -> None:
    """Declare a down host's guests gone for good: frees its GPUs and cores for new instances."""
    from gpucloud.services.host_health import declare_lost

    count = declare_lost(ctx.db, ref, why=why, actor="cli")
    click.echo(f"host {ref} declared lost; {count} instance(s) released")


@host.command("inspect")
@click.option("--root", default="/", show_default=True, type=click.Path(exists=True, file_okay=False),
              help="Read sysfs under this root (for recorded trees).")
@json_option
def inspect(root: str, as_json: bool) -> None:
    """Run ON a hypervisor host: is it ready for GPU passthrough? Exit status 1 when not."""
    from gpucloud.hypervisor.preflight import format_report, host_ready, run_preflight

    checks = run_preflight(Path(root))
    if as_json:
        emit_json([c.__dict__ for c in checks])
    else:
        click.echo(format_report(checks))
    if not host_ready(checks):
        raise SystemExit(1)


COMMANDS = [host]
