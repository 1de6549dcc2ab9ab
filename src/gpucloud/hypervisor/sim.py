"""The simulated hypervisor: a host that exists only as a small JSON file.

Workers run in several processes and may be killed at any instant, so a sim host's state
lives in `DATA_DIR/sim/<host name>.json`, changed under an `fcntl` lock and replaced
atomically (write a temporary file, then rename). Any process's driver for the same host
sees the same domains, and a test can inject a fault that another process's driver meets.

Behaviour follows libvirt's where it matters to the control plane: operations are
idempotent, `start` launches the guest at once and then takes `boot_seconds` to come up
(a repeated start waits only for what is left), a GPU that a running domain holds cannot
be started in a second one, and shutdown is ACPI first, then forced after its timeout.
Steps take the time they take on a real host, so each transitional status lasts long enough
for a polling client to see it: defining a new domain writes its disk from the image
(`provision_seconds`), a definition with a bigger disk grows it (`resize_seconds`), a
shutdown takes `shutdown_seconds`, a rebuild writes a fresh disk (`rebuild_seconds`). A
retried step that already happened takes no time (a rebuild always rewrites the disk).

Faults (`inject_fault`): `fail` (DriverError, retryable), `permanent` (PermanentDriverError),
`hang` (the call blocks for the driver's `timeout_s`, then DriverTimeout), `unreachable`
(HostUnreachable at once) and, for `shutdown`, `ignore_acpi` (the guest ignores the power
button, so it is forced off after the timeout). A fault applies to one operation or to all
(`"*"`), for the next `times` calls or until cleared; a faulty call changes nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import random
import re
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

from gpucloud.domain.guest import DomainSpec
from gpucloud.domain.topology import HostTopology
from gpucloud.hypervisor.base import (
    RUNNING,
    SHUTOFF,
    DomainInfo,
    DomainStats,
    DriverError,
    DriverTimeout,
    HostUnreachable,
    PermanentDriverError,
)
from gpucloud.hypervisor.profile import load_profile

OPERATIONS = ("discover", "define", "reimage", "start", "shutdown", "destroy", "undefine", "list_domains",
              "domain_stats")
FAULT_KINDS = ("fail", "permanent", "hang", "unreachable", "ignore_acpi")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_NOISE = random.Random()  # not the global generator: seeded code may share this process


def state_path(data_dir: str | Path, host_name: str) -> Path:
    if not _SAFE_NAME.match(host_name or ""):
        raise ValueError(f"not a usable sim host name: {host_name!r}")
    return Path(data_dir) / "sim" / f"{host_name}.json"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[dict]:
    """The host's state, exclusively, for reading and changing; written back on success (and
    only if it changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(path.read_text()) if path.exists() else {}
            state.setdefault("domains", {})
            state.setdefault("faults", [])
            state.setdefault("calls", {})
            before = json.dumps(state, sort_keys=True)
            yield state
            after = json.dumps(state, sort_keys=True)
            if after != before:
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
                with os.fdopen(fd, "w") as out:
                    out.write(after)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _take_fault(state: dict, operation: str) -> dict | None:
    """Count the call and consume the first fault injected for it (or for every operation)."""
    state["calls"][operation] = state["calls"].get(operation, 0) + 1
    fault = next((f for f in state["faults"] if f["operation"] in (operation, "*")), None)
    if fault is not None and fault["remaining"] is not None:
        fault["remaining"] -= 1
        if fault["remaining"] <= 0:
            state["faults"].remove(fault)
    return fault


def inject_fault(data_dir: str | Path, host_name: str, operation: str, kind: str, times: int | None = None) -> None:
    """Make the next `times` calls of `operation` ("*": any) on this host fail with `kind`;
    `times=None` keeps the fault until `clear_faults`."""
    if operation != "*" and operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; one of *, {', '.join(OPERATIONS)}")
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
    if kind == "ignore_acpi" and operation != "shutdown":
        raise ValueError("ignore_acpi only applies to shutdown")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ValueError(f"times must be a whole number >= 1 or None, not {times!r}")
    with _locked(state_path(data_dir, host_name)) as state:
        state["faults"].append({"operation": operation, "kind": kind, "remaining": times})


def clear_faults(data_dir: str | Path, host_name: str, operation: str | None = None) -> None:
    """Remove every fault of this host, or only those injected for `operation`."""
    with _locked(state_path(data_dir, host_name)) as state:
        state["faults"] = [f for f in state["faults"] if operation is not None and f["operation"] != operation]


def read_state(data_dir: str | Path, host_name: str) -> dict:
    """A copy of the host's domains, faults and call counts (for tests and the demo)."""
    with _locked(state_path(data_dir, host_name)) as state:
        return json.loads(json.dumps(state))


def _zero_counters(now: float) -> dict:
    return {"at": now, "cpu_seconds": 0.0, "disk_ops": 0, "disk_bytes": 0, "net_rx_bytes": 0, "net_tx_bytes": 0}


class SimDriver:
    """`HypervisorDriver` for a simulated host built from a profile (see `hypervisor.profile`)."""

    def __init__(self, data_dir: str | Path, host_name: str, profile: str | None, *, boot_seconds: float = 2.0,
                 shutdown_seconds: float = 0.0, provision_seconds: float = 0.0, resize_seconds: float = 0.0,
                 rebuild_seconds: float = 0.0, timeout_s: float = 30.0):
        self.path = state_path(data_dir, host_name)
        self.host_name = host_name
        self.profile = profile
        self.boot_seconds = boot_seconds
        self.shutdown_seconds = shutdown_seconds
        self.provision_seconds = provision_seconds
        self.resize_seconds = resize_seconds
        self.rebuild_seconds = rebuild_seconds
        self.timeout_s = timeout_s
        self._topology: HostTopology | None = None

    # -- plumbing ---------------------------------------------------------------------------

    def _fault(self, operation: str, fault: dict | None) -> str | None:
        """Act on a fault taken (`_take_fault`) while the state was locked, now that it is
        not: raise it, except `ignore_acpi`, which is returned for shutdown to act on. Every
        operation takes its fault and does its work under one lock: one read and at most one
        write of the state file per call."""
        if fault is None:
            return None
        what = f"{operation} on sim host {self.host_name}"
        kind = fault["kind"]
        if kind == "unreachable":
            raise HostUnreachable(f"{what}: host unreachable (connection refused)")
        if kind == "hang":
            time.sleep(self.timeout_s)
            raise DriverTimeout(f"{what}: no answer within {self.timeout_s:g} s")
        if kind == "permanent":
            raise PermanentDriverError(f"{what}: refused (injected permanent fault)")
        if kind == "fail":
            raise DriverError(f"{what}: failed (injected fault)")
        return kind

    def _call(self, operation: str) -> str | None:
        """An operation that touches no domain: count it and meet its fault."""
        with _locked(self.path) as state:
            fault = _take_fault(state, operation)
        return self._fault(operation, fault)

    def _topology_or_fail(self) -> HostTopology:
        if self._topology is None:
            if not self.profile:
                raise PermanentDriverError(f"sim host {self.host_name} has no profile to describe it")

            try:
                self._topology = load_profile(self.profile)
            except Exception as exc:  # noqa: BLE001 - a broken profile is the operator's to fix
                raise PermanentDriverError(f"sim host {self.host_name}: profile {self.profile!r}: {exc}") from None
        return self._topology

    # -- the protocol -----------------------------------------------------------------------

    def discover(self) -> HostTopology:
        self._call("discover")
        return self._topology_or_fail()

    def _missing_devices(self, what: str, spec: DomainSpec) -> PermanentDriverError | None:
        known = {g.address for g in self._topology_or_fail().gpus}
        missing = [g.address for g in spec.gpus if g.address not in known]
        if not missing:
            return None
        return PermanentDriverError(f"{what} {spec.name} on sim host {self.host_name}: "
                                    f"no PCI device {', '.join(missing)} on this host")

    @staticmethod
    def _definition(spec: DomainSpec) -> dict:
        """What the host keeps of a definition (the seed's password hash, for tests to read)."""
        cloud_init = spec.cloud_init
        return {"uuid": spec.uuid, "title": spec.title, "vcpus": spec.vcpus, "memory_mib": spec.memory_mib,
                "gpus": [g.address for g in spec.gpus], "rescue": spec.rescue,
                "root_pass_hash": cloud_init.root_pass_hash if cloud_init else None,
                "authorized_keys": list(cloud_init.authorized_keys) if cloud_init else []}

    def define(self, spec: DomainSpec) -> None:
        missing = self._missing_devices("define", spec)
        current: dict | None = None
        disk_mib = spec.disk_mib
        with _locked(self.path) as state:
            fault = _take_fault(state, "define")
            if fault is None and missing is None:
                current = state["domains"].get(spec.name)
                disk_mib = spec.disk_mib if current is None else current.get("disk_mib", spec.disk_mib)
                state["domains"][spec.name] = {
                    **(current or {"state": SHUTOFF, "ready_at": None, "image": spec.image, "disk_writes": 1}),
                    **self._definition(spec), "disk_mib": max(disk_mib, spec.disk_mib),
                }
        self._fault("define", fault)
        if missing is not None:
            raise missing
        if current is None:
            time.sleep(self.provision_seconds)  # the disk, written from the image
        elif spec.disk_mib > disk_mib:
            time.sleep(self.resize_seconds)  # the disk, grown

    def reimage(self, spec: DomainSpec) -> None:
        missing = self._missing_devices("reimage", spec)
        error: DriverError | None = missing
        with _locked(self.path) as state:
            fault = _take_fault(state, "reimage")
            if fault is None and missing is None:
                current = state["domains"].get(spec.name) or {"state": SHUTOFF, "ready_at": None, "disk_writes": 0}
                if current["state"] == RUNNING:
                    error = DriverError(f"reimage {spec.name} on sim host {self.host_name}: the domain is running")
                else:
                    state["domains"][spec.name] = {**current, **self._definition(spec), "image": spec.image,
                                                   "disk_mib": spec.disk_mib,
                                                   "disk_writes": current.get("disk_writes", 1) + 1}
        self._fault("reimage", fault)
        if error is not None:
            raise error
        time.sleep(self.rebuild_seconds)  # the old disk wiped, the image written

    def start(self, name: str) -> None:
        error: DriverError | None = None
        ready_at = 0.0
        with _locked(self.path) as state:
            fault = _take_fault(state, "start")
            domain = state["domains"].get(name)
            if fault is not None:
                pass
            elif domain is None:
                error = PermanentDriverError(f"start {name} on sim host {self.host_name}: no such domain")
            else:
                if domain["state"] != RUNNING:
                    for other_name, other in state["domains"].items():
                        shared = set(other["gpus"]) & set(domain["gpus"])
                        if other_name != name and other["state"] == RUNNING and shared:
                            error = DriverError(f"start {name} on sim host {self.host_name}: PCI device "
                                                f"{min(shared)} is in use by domain {other_name}")
                            break
                    else:
                        domain["state"], domain["ready_at"] = RUNNING, time.time() + self.boot_seconds
                        domain["counters"] = _zero_counters(time.time())
                ready_at = domain["ready_at"] or 0.0
        self._fault("start", fault)
        if error is not None:
            raise error
        time.sleep(max(0.0, ready_at - time.time()))  # the guest coming up

    def shutdown(self, name: str, timeout_s: float) -> bool:
        with _locked(self.path) as state:
            fault = _take_fault(state, "shutdown")
            domain = state["domains"].get(name)
            running = domain is not None and domain["state"] == RUNNING
        ignores_acpi = self._fault("shutdown", fault) == "ignore_acpi"
        if not running:
            return True
        if ignores_acpi or self.shutdown_seconds > timeout_s:
            time.sleep(timeout_s)
            self._power_off(name)
            return False
        time.sleep(self.shutdown_seconds)
        self._power_off(name)
        return True

    def destroy(self, name: str) -> None:
        with _locked(self.path) as state:
            fault = _take_fault(state, "destroy")
            if fault is None:
                _power_off(state, name)
        self._fault("destroy", fault)

    def undefine(self, name: str) -> None:
        with _locked(self.path) as state:
            fault = _take_fault(state, "undefine")
            if fault is None:
                state["domains"].pop(name, None)  # a running domain is forced off first, as libvirt's driver does
        self._fault("undefine", fault)

    def list_domains(self) -> list[DomainInfo]:
        with _locked(self.path) as state:
            fault = _take_fault(state, "list_domains")
            found = [DomainInfo(n, d["uuid"], d["state"]) for n, d in sorted(state["domains"].items())]
        self._fault("list_domains", fault)
        return found

    def domain_stats(self) -> list[DomainStats]:
        """Counters that grow as a busy guest's would: a load that swings over half an hour
        (its phase differs per domain) with some noise, driving CPU, disk and network alike."""
        now = time.time()
        found = []
        with _locked(self.path) as state:
            fault = _take_fault(state, "domain_stats")
            for name, domain in sorted(state["domains"].items()) if fault is None else ():
                if domain["state"] != RUNNING:
                    continue
                counters = domain.setdefault("counters", _zero_counters(now))
                seconds = max(0.0, now - counters["at"])
                phase = zlib.crc32(name.encode()) % 1000 / 1000 * 2 * math.pi
                load = min(1.0, max(0.02, 0.5 + 0.4 * math.sin(2 * math.pi * now / 1800 + phase)
                                    + random.uniform(-0.05, 0.05)))
                counters["at"] = now
                counters["cpu_seconds"] += domain["vcpus"] * load * seconds
                counters["disk_ops"] += int(120 * load * seconds)
                counters["disk_bytes"] += int(8 * 2**20 * load * seconds)
                counters["net_rx_bytes"] += int(2 * 2**20 * load * seconds)
                counters["net_tx_bytes"] += int(512 * 2**10 * load * seconds)
                found.append(DomainStats(name, domain["vcpus"], counters["cpu_seconds"], counters["disk_ops"],
                                         counters["disk_bytes"], counters["net_rx_bytes"], counters["net_tx_bytes"]))
        self._fault("domain_stats", fault)
        return found

    def close(self) -> None:
        """Nothing to release: every call opens and closes the state file."""

    def _power_off(self, name: str) -> None:
        with _locked(self.path) as state:
            _power_off(state, name)


def _power_off(state: dict, name: str) -> None:
    domain = state["domains"].get(name)
    if domain is not None:
        domain["state"], domain["ready_at"] = SHUTOFF, None
        domain.pop("counters", None)  # a guest's counters start again with its next boot
