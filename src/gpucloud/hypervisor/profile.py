"""Host profiles: a simulated host described compactly in TOML, expanded to `HostTopology`.

A profile says what an operator would say about a server (2 sockets of 20 cores, two NUMA
nodes of 192 GiB, four GPUs at these PCI addresses) and gets the CPU numbering, sibling
sets and SLIT distances Linux would report, so a sim host looks exactly like the same
machine discovered through libvirt. The format is documented in
`gpucloud/data/profiles/rtx6000-2s4g.toml`.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from gpucloud.domain.topology import (
    UNKNOWN_NUMA_NODE,
    Cpu,
    Gpu,
    HostTopology,
    NumaNode,
    PciFunction,
    TopologyError,
    normalise_pci_address,
    parse_cpu_list,
    pci_class_is_gpu,
)
from gpucloud.errors import GpucloudError
from gpucloud.hypervisor.discovery import load_fixture_dir
from gpucloud.hypervisor.sysfs import topology_from_sysfs

LOCAL_DISTANCE, SAME_SOCKET_DISTANCE, REMOTE_DISTANCE = 10, 12, 21
MEMORY_ONLY_DISTANCE = 80  # to and from a memory-only node (GPU memory, HBM, CXL), by default

_TOP_KEYS = {
    "description",
    "cpu_model",
    "sockets",
    "cores_per_socket",
    "threads_per_core",
    "distances",
    "node",
    "gpu",
    "gpu_defaults",
}
_NODE_KEYS = {"socket", "cores", "memory_gib", "hugepages_1g", "memory_only"}
_MEMORY_ONLY_KEYS = {"memory_only", "memory_gib"}
_GPU_FIELDS = {"vendor_id", "device_id", "class_code", "product", "companions"}
_GPU_KEYS = _GPU_FIELDS | {"address", "numa_node", "iommu_group", "extra_companions"}
_COMPANION_KEYS = {"address", "function", "class_code", "vendor_id", "device_id", "description"}


class ProfileError(GpucloudError):
    """A profile that cannot describe a host; the message starts with the file."""


class _Invalid(Exception):
    """Internal: what is wrong, before the file name is put in front."""


def builtin_profiles() -> dict[str, Path]:
    """Profiles shipped in `gpucloud/data/profiles/`, by name (the file name without .toml)."""
    folder = resources.files("gpucloud.data").joinpath("profiles")
    return {Path(f.name).stem: Path(str(f)) for f in folder.iterdir() if f.name.endswith(".toml")}


def load_profile(name_or_path: str | Path) -> HostTopology:
    """A shipped profile by name, a profile file by path, or a recorded host's directory: libvirt's
    view (capabilities.xml + nodedev/*.xml) or a copy of its sysfs (sys/ and proc/)."""
    shipped = builtin_profiles()
    if isinstance(name_or_path, str) and name_or_path in shipped:
        path = shipped[name_or_path]
    else:
        path = Path(name_or_path)
        if path.is_dir():
            return _load_recording(path)
        if not path.is_file():
            known = ", ".join(sorted(shipped))
            raise ProfileError(f"{name_or_path}: no such profile file or shipped profile (shipped: {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    return parse_profile(text, str(path))


def _load_recording(path: Path) -> HostTopology:
    if (path / "capabilities.xml").is_file():
        return load_fixture_dir(path)
    if (path / "sys/devices/system/node").is_dir():
        try:
            return topology_from_sysfs(path)
        except TopologyError as exc:
            raise ProfileError(f"{path}: {exc}") from None
    raise ProfileError(f"{path}: a directory, but neither a libvirt recording (capabilities.xml, nodedev/) "
                       "nor a sysfs copy (sys/devices/system/node)")


def parse_profile(text: str, source: str = "profile") -> HostTopology:
    """The topology a profile's TOML text describes; no I/O."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML ({exc})") from None
    try:
        return _expand(raw)
    except (_Invalid, TopologyError) as exc:
        raise ProfileError(" ".join(f"{source}: {exc}".split())) from None


# --- expansion ------------------------------------------------------------------------------

_MISSING = object()


def _get(table: dict, key: str, kind: type | tuple[type, ...], where: str, default: Any = _MISSING) -> Any:
    if key not in table:
        if default is _MISSING:
            raise _Invalid(f"{where}: missing key '{key}'")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise _Invalid(f"{where}: '{key}' must be {names}, not {value!r}")
    return value


def _flag(table: dict, key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise _Invalid(f"{where}: '{key}' must be true or false, not {value!r}")
    return value


def _check_keys(table: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(table, dict):
        raise _Invalid(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _Invalid(f"{where}: unknown key '{unknown[0]}'")
    return table


def _expand(raw: dict) -> HostTopology:
    _check_keys(raw, _TOP_KEYS, "profile")
    sockets = _get(raw, "sockets", int, "profile")
    cores_per_socket = _get(raw, "cores_per_socket", int, "profile")
    threads = _get(raw, "threads_per_core", int, "profile", 1)
    if min(sockets, cores_per_socket, threads) < 1:
        raise _Invalid("sockets, cores_per_socket and threads_per_core must be at least 1")
    node_tables = _get(raw, "node", list, "profile")
    if not node_tables:
        raise _Invalid("at least one [[node]] is needed")
    node_tables = [_check_keys(t, _NODE_KEYS, f"node {i}") for i, t in enumerate(node_tables)]
    memory_only = [_flag(t, "memory_only", f"node {i}") for i, t in enumerate(node_tables)]
    for i, table in enumerate(node_tables):
        if memory_only[i]:
            _check_keys(table, _MEMORY_ONLY_KEYS, f"node {i} (memory-only: no socket, cores or 1 GiB pages)")
    cpu_nodes = [i for i in range(len(node_tables)) if not memory_only[i]]
    if not cpu_nodes:
        raise _Invalid("at least one [[node]] with CPUs is needed")
    socket_of = {i: _get(node_tables[i], "socket", int, f"node {i}") for i in cpu_nodes}
    for i, socket in socket_of.items():
        if not 0 <= socket < sockets:
            raise _Invalid(f"node {i}: socket {socket} does not exist (the host has {sockets})")
    node_sockets = [socket_of.get(i) for i in range(len(node_tables))]
    node_cores = _assign_cores(node_tables, node_sockets, sockets, cores_per_socket)
    distances = _distances(raw, node_sockets)

    total_cores = sockets * cores_per_socket
    nodes = []
    for i, table in enumerate(node_tables):
        memory_gib = _get(table, "memory_gib", (int, float), f"node {i}")
        hugepages = _get(table, "hugepages_1g", int, f"node {i}", 0)
        if memory_gib <= 0 or not 0 <= hugepages <= memory_gib:
            raise _Invalid(f"node {i}: needs memory_gib > 0 and 0 <= hugepages_1g <= memory_gib")
        socket = socket_of.get(i, 0)
        cpus: list[Cpu] = []
        for core in node_cores[i]:
            # Linux on x86 servers: first threads of all cores of all sockets, then the second threads.
            ids = tuple(t * total_cores + socket * cores_per_socket + core for t in range(threads))
            cpus.extend(Cpu(id=cpu_id, socket=socket, core=core, siblings=ids) for cpu_id in ids)
        nodes.append(
            NumaNode(
                index=i,
                cpus=tuple(sorted(cpus, key=lambda c: c.id)),
                memory_mib=round(memory_gib * 1024),
                hugepages_1g=hugepages,
                distances=distances[i],
            )
        )
    return HostTopology(
        nodes=tuple(nodes),
        gpus=_gpus(raw, len(nodes)),
        cpu_model=_get(raw, "cpu_model", str, "profile", ""),
        threads_per_core=threads,
    )


def _assign_cores(
    tables: list[dict], node_sockets: list[int | None], sockets: int, cores_per_socket: int
) -> list[tuple[int, ...]]:
    """Per node, the core ids (per socket) it holds: given as 'cores', or the socket split evenly.
    A memory-only node (socket None) holds none."""
    result: list[tuple[int, ...]] = [()] * len(tables)
    for socket in range(sockets):
        members = [i for i, s in enumerate(node_sockets) if s == socket]
        if not members:
            raise _Invalid(f"socket {socket} has no [[node]]")
        given = ["cores" in tables[i] for i in members]
        if any(given) and not all(given):
            raise _Invalid(f"socket {socket}: give 'cores' for all of its nodes or for none")
        if not any(given):
            if cores_per_socket % len(members):
                raise _Invalid(
                    f"socket {socket}: {cores_per_socket} cores do not split evenly over {len(members)} nodes"
                )
            share = cores_per_socket // len(members)
            for k, i in enumerate(members):
                result[i] = tuple(range(k * share, (k + 1) * share))
            continue
        seen: dict[int, int] = {}
        for i in members:
            try:
                cores = parse_cpu_list(_get(tables[i], "cores", str, f"node {i}"))
            except ValueError:
                raise _Invalid(f"node {i}: 'cores' is not a list like '0-19'") from None
            for core in cores:
                if core >= cores_per_socket:
                    raise _Invalid(f"node {i}: core {core} does not exist (socket has {cores_per_socket})")
                if core in seen:
                    raise _Invalid(f"node {i}: core {core} of socket {socket} is already in node {seen[core]}")
                seen[core] = i
            result[i] = cores
        if len(seen) != cores_per_socket:
            missing = min(set(range(cores_per_socket)) - set(seen))
            raise _Invalid(f"socket {socket}: core {missing} is in no node")
    return result


def _distances(raw: dict, node_sockets: list[int | None]) -> list[tuple[int, ...]]:
    """None for a memory-only node's socket."""
    n = len(node_sockets)
    if "distances" not in raw:
        return [
            tuple(
                LOCAL_DISTANCE
                if i == j
                else MEMORY_ONLY_DISTANCE
                if node_sockets[i] is None or node_sockets[j] is None
                else SAME_SOCKET_DISTANCE
                if node_sockets[i] == node_sockets[j]
                else REMOTE_DISTANCE
                for j in range(n)
            )
            for i in range(n)
        ]
    matrix = _get(raw, "distances", list, "profile")
    if len(matrix) != n or any(not isinstance(row, list) or len(row) != n for row in matrix):
        raise _Invalid(f"distances must be a {n}×{n} matrix, one row per node")
    if any(isinstance(v, bool) or not isinstance(v, int) or not 10 <= v <= 255 for row in matrix for v in row):
        raise _Invalid("distances must be integers from 10 to 255")
    return [tuple(row) for row in matrix]


def _companion(table: Any, gpu_address: str, where: str) -> PciFunction:
    _check_keys(table, _COMPANION_KEYS, where)
    if ("address" in table) == ("function" in table):
        raise _Invalid(f"{where}: give either 'address' or 'function'")
    if "function" in table:
        address = gpu_address[:-1] + str(_get(table, "function", int, where))
    else:
        address = _get(table, "address", str, where)
    return PciFunction(
        address=normalise_pci_address(address),
        class_code=_get(table, "class_code", int, where),
        vendor_id=_get(table, "vendor_id", int, where, 0),
        device_id=_get(table, "device_id", int, where, 0),
        description=_get(table, "description", str, where, ""),
    )


def _gpus(raw: dict, node_count: int) -> tuple[Gpu, ...]:
    defaults = _check_keys(raw.get("gpu_defaults", {}), _GPU_FIELDS, "[gpu_defaults]")
    owners: dict[str, str] = {}  # PCI address -> what claims it
    groups: dict[int, str] = {}
    gpus = []
    for i, table in enumerate(_get(raw, "gpu", list, "profile", [])):
        where = f"gpu {i}"
        _check_keys(table, _GPU_KEYS, where)
        address = normalise_pci_address(_get(table, "address", str, where))
        where = f"gpu {address}"
        merged = {**defaults, **table}
        class_code = _get(merged, "class_code", int, where)
        if not pci_class_is_gpu(class_code):
            raise _Invalid(f"{where}: class 0x{class_code:06x} is not a GPU (0x0300xx or 0x0302xx)")
        numa_node = _get(table, "numa_node", int, where)
        if numa_node != UNKNOWN_NUMA_NODE and not 0 <= numa_node < node_count:
            raise _Invalid(
                f"{where}: NUMA node {numa_node} does not exist (the host has {node_count}; -1 means unknown)"
            )
        group = _get(table, "iommu_group", int, where)
        if group in groups:
            raise _Invalid(f"{where}: IOMMU group {group} is already given to {groups[group]}")
        groups[group] = address
        companions = [
            _companion(c, address, f"{where} companion")
            for c in _get(merged, "companions", list, where, []) + _get(table, "extra_companions", list, where, [])
        ]
        for fn_address, owner in [(address, where)] + [(c.address, f"{where} companion") for c in companions]:
            if fn_address in owners:
                raise _Invalid(f"duplicate PCI address {fn_address} ({owners[fn_address]} and {owner})")
            owners[fn_address] = owner
        gpus.append(
            Gpu(
                address=address,
                vendor_id=_get(merged, "vendor_id", int, where),
                device_id=_get(merged, "device_id", int, where),
                class_code=class_code,
                numa_node=numa_node,
                iommu_group=group,
                product=_get(merged, "product", str, where, ""),
                companions=tuple(sorted(companions, key=lambda c: c.address)),
            )
        )
    return tuple(sorted(gpus, key=lambda g: g.address))
