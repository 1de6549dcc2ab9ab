"""The hypervisor driver protocol: all the control plane ever asks of a host.

Every operation is idempotent, because a job may be retried after a crash at any point:
defining a domain that exists replaces its definition, starting a running domain and
destroying or undefining a missing one succeed quietly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gpucloud.domain.guest import DomainSpec
from gpucloud.domain.topology import HostTopology


class DriverError(Exception):
    """The host answered, but refused or failed the operation. `reason` is shown to operators."""

    retryable = True

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HostUnreachable(DriverError):
    """The host did not answer (connection refused, timed out, TLS failure...)."""


class DriverTimeout(DriverError):
    """The host answered but the operation did not finish in time."""


class PermanentDriverError(DriverError):
    """Retrying will not help (invalid configuration, missing device)."""

    retryable = False


# Domain states, as the control plane sees them.
RUNNING = "running"
SHUTOFF = "shutoff"
PAUSED = "paused"
CRASHED = "crashed"
OTHER = "other"


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: str  # one of the constants above


@dataclass(frozen=True)
class DomainStats:
    """A running domain's counters, cumulative since its guest started."""

    name: str
    vcpus: int
    cpu_seconds: float
    disk_ops: int  # read and write requests, all disks
    disk_bytes: int  # read and written, all disks
    net_rx_bytes: int
    net_tx_bytes: int


class HypervisorDriver(Protocol):
    def discover(self) -> HostTopology:
        """Read the host's NUMA topology and GPUs."""

    def define(self, spec: DomainSpec) -> None:
        """Create or replace the persistent definition (disk and cloud-init seed included)."""

    def reimage(self, spec: DomainSpec) -> None:
        """Wipe the stopped domain's disk and write a fresh one from `spec.image`, then define it
        as `define` does (seed included). A running domain is refused."""

    def start(self, name: str) -> None:
        """Start a defined domain; a running one is left alone."""

    def shutdown(self, name: str, timeout_s: float) -> bool:
        """ACPI shutdown, then force off after `timeout_s`. True when the guest stopped by itself."""

    def destroy(self, name: str) -> None:
        """Force the domain off; missing or stopped domains are fine."""

    def undefine(self, name: str) -> None:
        """Remove the definition and its storage; a missing domain is fine."""

    def list_domains(self) -> list[DomainInfo]:
        """Every domain this host knows, ours or not."""

    def domain_stats(self) -> list[DomainStats]:
        """The counters of every running domain."""

    def close(self) -> None:
        """Release connections."""
