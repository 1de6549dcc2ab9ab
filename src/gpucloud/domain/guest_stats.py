"""An instance's usage from its counters: the hypervisor reports cumulative counters per running
domain (guest CPU time, disk requests and bytes, interface bytes), which restart from zero
when the guest's process does. Rates are the differences of consecutive readings; transfer is
their sum. Pure: the store keeps a bounded ring of readings per instance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

GIB = 1024**3


@dataclass(frozen=True)
class Reading:
    at: datetime  # UTC, naive
    vcpus: int
    cpu_seconds: float
    disk_ops: int
    disk_bytes: int
    net_rx_bytes: int
    net_tx_bytes: int

    def restarted_since(self, earlier: Reading) -> bool:
        """Counters only grow while the guest runs: a smaller one means it started afresh."""
        return (self.cpu_seconds < earlier.cpu_seconds or self.disk_ops < earlier.disk_ops
                or self.net_rx_bytes < earlier.net_rx_bytes or self.net_tx_bytes < earlier.net_tx_bytes)


def ring_slot(at: datetime, every_s: float, kept: int) -> int:
    """Where a reading goes in an instance's ring: the sample number modulo the ring's size, so
    a day at five minutes is 288 rows whatever the age of the instance."""
    return int(at.replace(tzinfo=UTC).timestamp() // every_s) % kept


def traffic(earlier: Reading | None, now: Reading) -> tuple[int, int]:
    """Bytes received and sent between two readings (all of `now`'s after a restart)."""
    if earlier is None or now.restarted_since(earlier):
        return now.net_rx_bytes, now.net_tx_bytes
    return now.net_rx_bytes - earlier.net_rx_bytes, now.net_tx_bytes - earlier.net_tx_bytes


def _ms(at: datetime) -> int:
    return int(at.replace(tzinfo=UTC).timestamp() * 1000)


def series(readings: list[Reading]) -> dict:
    """Linode's stats `data`: cpu in percent (100 per vCPU), io in blocks (requests) per second,
    network in bits per second, each a list of [milliseconds since the epoch, value] at the end
    of each interval. The interface's traffic is all counted as public IPv4 (the hypervisor's
    counters do not tell v4 from v6); swap and private traffic are zero."""
    cpu: list[list[float]] = []
    io: list[list[float]] = []
    swap: list[list[float]] = []
    net_in: list[list[float]] = []
    net_out: list[list[float]] = []
    zeros: list[list[float]] = []
    ordered = sorted(readings, key=lambda r: r.at)
    for a, b in zip(ordered, ordered[1:], strict=False):
        seconds = (b.at - a.at).total_seconds()
        if seconds <= 0 or b.restarted_since(a):
            continue
        t = _ms(b.at)
        cpu.append([t, round(100 * (b.cpu_seconds - a.cpu_seconds) / seconds, 2)])
        io.append([t, round((b.disk_ops - a.disk_ops) / seconds, 2)])
        swap.append([t, 0.0])
        net_in.append([t, round(8 * (b.net_rx_bytes - a.net_rx_bytes) / seconds, 2)])
        net_out.append([t, round(8 * (b.net_tx_bytes - a.net_tx_bytes) / seconds, 2)])
        zeros.append([t, 0.0])
    return {
        "cpu": cpu,
        "io": {"io": io, "swap": swap},
        "netv4": {"in": net_in, "out": net_out, "private_in": list(zeros), "private_out": list(zeros)},
        "netv6": {"in": list(zeros), "out": list(zeros), "private_in": list(zeros), "private_out": list(zeros)},
    }


def transfer(sent_bytes: int, quota_gb: int) -> dict:
    """Linode's transfer answer: `used` in bytes this month (outbound: inbound is free), `quota`
    and `billable` (what exceeds the quota) in whole GB."""
    over_gb = sent_bytes / GIB - quota_gb
    return {"used": sent_bytes, "quota": quota_gb, "billable": math.ceil(over_gb) if over_gb > 0 else 0}
