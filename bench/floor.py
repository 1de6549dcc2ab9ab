"""The floor of a create: a FastAPI endpoint that writes the rows a gpucloud create writes, with
SQLAlchemy Core in one transaction, and does nothing else (no token, no flags, no validation
beyond the body model, no placement: it takes the next free GPU and threads from lists read
at start). `bench/api.py floor` serves it exactly as `gpucloud api --workers 1` serves
gpucloud (the same `api.serving.uvicorn_config`: HTTP protocol, keep-alive, head deadline; the
same TCP socket) and compares the CPU each spends per create.

    .venv/bin/python bench/floor.py --port 9876     # with GPUCLOUD_DATABASE_URL set

Rows per create, as gpucloud writes them: the host's generation (compare-and-swap), the
instance with its IPv4 address and MAC (the next of a counter: no pool query), its billing usage
interval, its memory claim, its CPU claims and its GPU
claim (one multi-row INSERT each), a `linode_create` event and a `create` job. The answer is
the instance shaped by `gpucloud.api.views.instance`, as gpucloud answers.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import socket
import threading
from collections import defaultdict
from types import SimpleNamespace

import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, insert, select, update

from gpucloud.api import views
from gpucloud.api.bodies import InstanceCreate
from gpucloud.api.serving import uvicorn_config
from gpucloud.catalog import load_catalog
from gpucloud.clock import utcnow
from gpucloud.config import load_settings
from gpucloud.store.db import normalise_url
from gpucloud.store.tables import (
    Account,
    CpuClaim,
    CpuRow,
    Event,
    GpuClaim,
    GpuRow,
    Host,
    Instance,
    Job,
    MemoryClaim,
    NumaNodeRow,
    UsageInterval,
)

ALERTS = {"cpu": 90, "io": 10000, "network_in": 10, "network_out": 10, "transfer_quota": 80}


class FreeList:
    """Every GPU of the database with the free threads of its NUMA node, handed out in order."""

    def __init__(self, engine, threads_per_gpu: int):
        with engine.connect() as conn:
            nodes = {(h, i): nid for nid, h, i in conn.execute(select(NumaNodeRow.id, NumaNodeRow.host_id,
                                                                      NumaNodeRow.node_index))}
            cpus: dict[int, list[int]] = defaultdict(list)
            for cid, nid in conn.execute(select(CpuRow.id, CpuRow.numa_node_id).where(CpuRow.reserved.is_(False))
                                         .order_by(CpuRow.cpu_index)):
                cpus[nid].append(cid)
            self.slots = []
            for gid, host, node in conn.execute(select(GpuRow.id, GpuRow.host_id, GpuRow.numa_node)
                                                .order_by(GpuRow.host_id, GpuRow.pci_address)):
                nid = nodes[(host, node)]
                taken, cpus[nid] = cpus[nid][:threads_per_gpu], cpus[nid][threads_per_gpu:]
                if len(taken) == threads_per_gpu:
                    self.slots.append((host, nid, gid, taken))
            self.generations = dict(conn.execute(select(Host.id, Host.generation)).all())
        self.lock = threading.Lock()

    def take(self) -> tuple[int, int, int, list[int], int]:
        with self.lock:
            host, nid, gid, cpus = self.slots.pop(0)
            seen = self.generations[host]
            self.generations[host] = seen + 1
        return host, nid, gid, cpus, seen


def create_floor_app(url: str) -> FastAPI:
    catalog = load_catalog()
    plan = catalog.plan("g1-gpu-rtx6000-1")
    url = normalise_url(url)
    sqlite = {"connect_args": {"check_same_thread": False, "timeout": 30}} if url.startswith("sqlite") else {}
    engine = create_engine(url, **sqlite)
    free = FreeList(engine, plan.vcpus)
    with engine.connect() as conn:
        account_id = conn.scalar(select(Account.id).order_by(Account.id.desc()).limit(1))
    addresses = itertools.count(10)  # next() is atomic under the GIL
    app = FastAPI()

    @app.post("/v4/linode/instances")
    def create(body: InstanceCreate) -> dict:
        region = catalog.region(body.region or "")
        host, nid, gid, cpus, seen = free.take()
        now = utcnow()
        with engine.begin() as conn:
            conn.execute(update(Host).where(Host.id == host, Host.generation == seen)
                         .values(generation=Host.generation + 1))
            n = next(addresses)
            ipv4 = str(ipaddress.ip_network(region.ipv4_pool).network_address + n)
            mac = f"52:54:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
            row = {"account_id": account_id, "label": body.label, "group_name": "", "region_id": region.id,
                   "type_id": plan.id, "image": None, "status": "provisioning", "status_reason": "", "host_id": host,
                   "booted": bool(body.booted), "tags": [], "alerts": dict(ALERTS), "watchdog_enabled": True,
                   "root_pass_hash": None, "authorized_keys": [], "user_data": None, "created_by": "floor",
                   "created_at": now, "updated_at": now, "ipv4": ipv4, "ipv6": None, "mac": mac}
            iid = conn.scalar(insert(Instance.__table__).values(row).returning(Instance.__table__.c.id))
            conn.execute(insert(UsageInterval).values(account_id=account_id, instance_id=iid, label=body.label,
                                                      region_id=region.id, type_id=plan.id, started_at=now))
            conn.execute(insert(MemoryClaim).values([{"instance_id": iid, "numa_node_id": nid, "host_id": host,
                                                      "guest_cell": 0, "memory_mib": plan.memory_mib,
                                                      "hugepages_1g": 0, "shared_vcpus": 0}]))
            conn.execute(insert(CpuClaim).values([{"cpu_id": c, "instance_id": iid, "host_id": host,
                                                   "guest_vcpu": v} for v, c in enumerate(cpus)]))
            conn.execute(insert(GpuClaim).values([{"gpu_id": gid, "instance_id": iid, "host_id": host}]))
            eid = conn.scalar(insert(Event).values(
                action="linode_create", account_id=account_id, status="scheduled", percent_complete=0,
                entity_type="linode", entity_id=iid, entity_label=body.label, username="floor", message="")
                .returning(Event.id))
            conn.execute(insert(Job).values(kind="create", instance_id=iid, host_id=host, event_id=eid, payload={},
                                            state="queued", attempts=0, max_attempts=5, run_after=now))
        inst = SimpleNamespace(**row, id=iid, group="")
        return views.instance(inst, plan, region)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = create_floor_app(os.environ["GPUCLOUD_DATABASE_URL"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as `gpucloud api` binds
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    # the HTTP protocol, keep-alive and head deadline `gpucloud api` serves with, whatever they are
    config = uvicorn_config(app, load_settings(), log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
