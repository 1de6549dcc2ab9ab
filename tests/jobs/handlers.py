"""Handlers the queue tests run, in-process and in worker subprocesses (`worker_proc`)."""

from __future__ import annotations

import json
import os
import time
import uuid

from gpucloud.domain.guest import DomainSpec, GuestCell, GuestGpu, domain_name
from gpucloud.hypervisor.base import DriverError, PermanentDriverError
from gpucloud.jobs.queue import PermanentJobError, RetryableJobError


def record(ctx) -> None:
    """Sleep `seconds`, then append when it ran to the file `log` (one JSON line, O_APPEND,
    so lines from several processes never interleave)."""
    start = time.time()
    ctx.sleep(ctx.payload.get("seconds", 0.0))
    line = {"job": ctx.id, "instance": ctx.instance_id, "attempt": ctx.attempt, "pid": os.getpid(),
            "start": start, "end": time.time()}
    fd = os.open(ctx.payload["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def spec_for(instance_id: int, gpu: str = "0000:3b:00.0") -> DomainSpec:
    """A small one-GPU guest; the same instance always gets the same definition."""
    return DomainSpec(
        name=domain_name(instance_id), uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"gpucloud/{instance_id}")),
        title=f"instance {instance_id}", vcpu_pins=(None, None),
        cells=(GuestCell(id=0, host_node=0, vcpus=(0, 1), memory_mib=2048),),
        gpus=(GuestGpu(address=gpu, functions=(gpu,), cell=0),),
    )


def sim_boot(ctx) -> None:
    """What an instance create does on a host, in small: define, start (the guest takes the
    sim boot time to come up), report progress along the way."""
    driver = ctx.driver()
    spec = spec_for(ctx.instance_id, ctx.payload.get("gpu", "0000:3b:00.0"))
    ctx.progress(10, "defining")
    driver.define(spec)
    ctx.progress(40, "booting")
    driver.start(spec.name)
    ctx.progress(90)


def fail(ctx) -> None:
    """Fail as `payload['error']` says while the attempt is below `payload['until']`."""
    if ctx.attempt >= ctx.payload.get("until", 1_000_000):
        return
    error = ctx.payload["error"]
    if error == "retryable":
        raise RetryableJobError("the host is busy, trying again")
    if error == "permanent":
        raise PermanentJobError("that image does not exist")
    if error == "driver":
        raise DriverError("connection reset by host")
    if error == "driver-permanent":
        raise PermanentDriverError("no PCI device 0000:99:00.0 on this host")
    raise KeyError("bug in the handler")


HANDLERS = {"record": record, "sim_boot": sim_boot, "fail": fail}
