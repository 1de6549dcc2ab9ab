"""Claims through the store: how many GPU instances per second `create_instance` places and
claims on SQLite and on PostgreSQL, with 4 threads competing and with 1 (the baseline),
how many attempts were redone because another claim won the race, and proof afterwards
that no GPU or core was claimed twice.

    .venv/bin/python bench/claims.py            # 3 runs per configuration (about 3 minutes)
    .venv/bin/python bench/claims.py --quick    # 1 run each, smaller scaling sweep

Each run starts from an empty store: a fresh SQLite file or PostgreSQL database with
`--hosts` simulated hosts of three GPU profiles in one region, registered as `gpucloud host
add` registers them. The threads call `create_instance` directly (no HTTP, no workers: the
create job stays queued) with a weighted mix of the 1-, 2- and 4-GPU plans of those models,
until every plan of the mix is refused with "No capacity" because the fleet is full.

What is counted, from outside the service (which is not changed):
- creates/s: instances created / wall time of the fill; latency of each successful create;
- attempts: `create_instance` asks this process's view of the region for a decision once
  per attempt, so this process wraps `gpucloud.store.host_states.place` and
  `gpucloud.store.claims.claim_host` with counters (they still do exactly what they did). Attempts beyond one per create are conflicts retried:
  either the host generation compare-and-swap found the host changed ("CAS"), or a unique
  key on gpu_claims / cpu_claims refused the insert ("unique key");
- creates refused after `claim_retries` lost races ("lost races"): the bench retries them.

Afterwards, in SQL: count(*) = count(DISTINCT gpu_id) over gpu_claims and cpu_claims; every
claim on its instance's host; every GPU and pinned thread on a NUMA node its instance has
memory on, and memory only on nodes of its GPUs; no reserved thread claimed; SMT siblings
held together; claim counts equal to the plan; and `capacity` sells nothing more of the mix.

A second table shows what one create costs as the candidate hosts (hosts of the plan's GPU
model in the region) grow: each attempt asks the store for the state of all of them.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _store import machine, percentile, register_fleet, scratch, table
from sqlalchemy import text

from gpucloud.catalog import load_catalog
from gpucloud.errors import GpucloudError
from gpucloud.services import accounts
from gpucloud.services.capacity import capacity
from gpucloud.services.instances import NO_CAPACITY_PREFIX, NewInstance, create_instance
from gpucloud.store import claims as claim_store
from gpucloud.store import host_states
from gpucloud.store.db import Database

REGION = "us-east"
FLEET_MIX = {"rtx6000-2s4g": 0.4, "rtx4000ada-2s8g": 0.3, "h100-nps4-8g": 0.3}
PLAN_MIX = {  # relative weights; 1-GPU plans sell most
    "g1-gpu-rtx6000-1": 4, "g1-gpu-rtx6000-2": 2, "g1-gpu-rtx6000-4": 1,
    "g2-gpu-rtx4000a1-s": 3, "g2-gpu-rtx4000a1-m": 3, "g2-gpu-rtx4000a2-s": 1.5, "g2-gpu-rtx4000a4-s": 0.5,
    "g3-gpu-h100-1": 3, "g3-gpu-h100-2": 2, "g3-gpu-h100-4": 1,
}


# --- counting attempts from outside the service ----------------------------------------------------


class Probe:
    """Per-thread counters fed by thin wrappers around the two store functions every attempt
    of `create_instance` calls; the wrappers return exactly what the originals return."""

    def __init__(self):
        self.local = threading.local()
        self._place, self._claim = host_states.place, claim_store.claim_host

    def install(self) -> None:
        def place(*args, **kwargs):
            self.local.attempts = getattr(self.local, "attempts", 0) + 1
            return self._place(*args, **kwargs)

        def claim_host(*args, **kwargs):
            generation = self._claim(*args, **kwargs)
            if generation is None:
                self.local.cas_lost = getattr(self.local, "cas_lost", 0) + 1
            return generation

        host_states.place, claim_store.claim_host = place, claim_host

    def uninstall(self) -> None:
        host_states.place, claim_store.claim_host = self._place, self._claim

    def take(self) -> tuple[int, int]:
        """(attempts, CAS failures) since the last call, in this thread."""
        got = (getattr(self.local, "attempts", 0), getattr(self.local, "cas_lost", 0))
        self.local.attempts = self.local.cas_lost = 0
        return got


# --- one fill ------------------------------------------------------------------------------------------


def fleet_for(hosts: int) -> dict[tuple[str, str], int]:
    counts = {p: int(hosts * share) for p, share in FLEET_MIX.items()}
    counts[next(iter(counts))] += hosts - sum(counts.values())
    return {(REGION, p): n for p, n in counts.items()}


def fill(kind: str, hosts: int, threads: int, seed: int, probe: Probe) -> dict:
    """Create instances from `threads` threads until every plan of the mix is refused."""
    with scratch(kind) as store:
        settings = store.settings()
        db = Database(store.url, pool_size=max(threads, 5))
        try:
            register_fleet(db, settings, fleet_for(hosts))
            account = accounts.create_account(db, "claims@example.com", username="claims")
            exhausted: set[str] = set()
            lock = threading.Lock()
            start = threading.Barrier(threads + 1)
            results: list[dict] = []

            def worker(n: int) -> None:
                rng = random.Random(seed * 100 + n)
                mine = {"latencies": [], "attempts": 0, "cas": 0, "creates": 0, "refusals": 0, "lost": 0,
                        "plans": Counter()}
                start.wait()
                i = 0
                while True:
                    with lock:
                        left = [p for p in PLAN_MIX if p not in exhausted]
                    if not left:
                        break
                    plan = rng.choices(left, weights=[PLAN_MIX[p] for p in left])[0]
                    i += 1
                    t = time.perf_counter()
                    try:
                        create_instance(db, settings, account.id, "claims",
                                        NewInstance(type=plan, region=REGION, label=f"t{n}-{i}", booted=False),
                                        bypass_flags=True)
                        mine["latencies"].append(time.perf_counter() - t)
                        mine["creates"] += 1
                        mine["plans"][plan] += 1
                    except GpucloudError as exc:
                        if not exc.reason.startswith(NO_CAPACITY_PREFIX):
                            raise
                        if "lost" in exc.reason and "races" in exc.reason:
                            mine["lost"] += 1  # not full: another thread kept winning; try again
                        else:
                            mine["refusals"] += 1
                            with lock:
                                exhausted.add(plan)
                    attempts, cas = probe.take()
                    mine["attempts"] += attempts
                    mine["cas"] += cas
                with lock:
                    results.append(mine)

            pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
            for t in pool:
                t.start()
            start.wait()
            began = time.perf_counter()
            for t in pool:
                t.join()
            wall = time.perf_counter() - began
            creates = sum(r["creates"] for r in results)
            finals = creates + sum(r["refusals"] for r in results)  # attempts that ended the call well
            attempts = sum(r["attempts"] for r in results)
            cas = sum(r["cas"] for r in results)
            lost = sum(r["lost"] for r in results)
            retried = attempts - finals  # every other attempt lost a race and was redone (or gave up)
            checks = verify(db, settings)
            return {"kind": kind, "threads": threads, "wall": wall, "creates": creates, "per_s": creates / wall,
                    "latencies": [x for r in results for x in r["latencies"]], "attempts": attempts,
                    "retried": retried, "cas": cas, "unique": retried - cas, "lost": lost,
                    "plans": sum((r["plans"] for r in results), Counter()), **checks}
        finally:
            db.dispose()


# --- proof ---------------------------------------------------------------------------------------------

SQL_ZERO = {
    "GPU claims on another host than their instance's": """
        SELECT count(*) FROM gpu_claims c JOIN gpus g ON g.id = c.gpu_id JOIN instances i ON i.id = c.instance_id
        WHERE g.host_id <> i.host_id OR c.host_id <> i.host_id""",
    "thread claims on another host than their instance's": """
        SELECT count(*) FROM cpu_claims c JOIN cpus u ON u.id = c.cpu_id JOIN instances i ON i.id = c.instance_id
        WHERE u.host_id <> i.host_id OR c.host_id <> i.host_id""",
    "memory claims on another host than their instance's": """
        SELECT count(*) FROM memory_claims m JOIN numa_nodes n ON n.id = m.numa_node_id
        JOIN instances i ON i.id = m.instance_id WHERE n.host_id <> i.host_id OR m.host_id <> i.host_id""",
    "GPUs on a NUMA node where their instance has no memory": """
        SELECT count(*) FROM gpu_claims c JOIN gpus g ON g.id = c.gpu_id
        LEFT JOIN numa_nodes n ON n.host_id = g.host_id AND n.node_index = g.numa_node
        LEFT JOIN memory_claims m ON m.instance_id = c.instance_id AND m.numa_node_id = n.id
        WHERE m.instance_id IS NULL""",
    "threads on a NUMA node where their instance has no memory": """
        SELECT count(*) FROM cpu_claims c JOIN cpus u ON u.id = c.cpu_id
        LEFT JOIN memory_claims m ON m.instance_id = c.instance_id AND m.numa_node_id = u.numa_node_id
        WHERE m.instance_id IS NULL""",
    "memory of a GPU instance on a node without its GPUs": """
        SELECT count(*) FROM memory_claims m JOIN numa_nodes n ON n.id = m.numa_node_id
        JOIN instances i ON i.id = m.instance_id JOIN instance_types t ON t.id = i.type_id
        WHERE t.gpus > 0 AND NOT EXISTS (
            SELECT 1 FROM gpu_claims c JOIN gpus g ON g.id = c.gpu_id
            WHERE c.instance_id = m.instance_id AND g.host_id = n.host_id AND g.numa_node = n.node_index)""",
    "reserved threads claimed": """
        SELECT count(*) FROM cpu_claims c JOIN cpus u ON u.id = c.cpu_id WHERE u.reserved""",
}


def verify(db: Database, settings) -> dict:
    """Everything that must hold after the fill; returns the figures and the list of failures."""
    catalog = load_catalog()
    failures: list[str] = []
    with db.read() as s:
        q = lambda sql: s.execute(text(sql)).one()  # noqa: E731
        gpu_rows, gpu_distinct = q("SELECT count(*), count(DISTINCT gpu_id) FROM gpu_claims")
        cpu_rows, cpu_distinct = q("SELECT count(*), count(DISTINCT cpu_id) FROM cpu_claims")
        if gpu_rows != gpu_distinct:
            failures.append(f"{gpu_rows - gpu_distinct} GPUs claimed twice")
        if cpu_rows != cpu_distinct:
            failures.append(f"{cpu_rows - cpu_distinct} threads claimed twice")
        for what, sql in SQL_ZERO.items():
            if (n := q(sql)[0]) != 0:
                failures.append(f"{n} {what}")
        # SMT siblings together: a claimed thread's siblings are claimed by the same instance
        holder = {(h, c): i for h, c, i in s.execute(text(
            "SELECT u.host_id, u.cpu_index, c.instance_id FROM cpu_claims c JOIN cpus u ON u.id = c.cpu_id"))}
        siblings = {(h, c): sib for h, c, sib in s.execute(text("SELECT host_id, cpu_index, siblings FROM cpus"))}
        split = sum(1 for (h, c), i in holder.items()
                    if any(holder.get((h, x)) != i for x in _as_list(siblings[(h, c)])))
        if split:
            failures.append(f"{split} claimed threads whose SMT sibling is not held by the same instance")
        # claim counts equal the plan
        per_instance = defaultdict(lambda: [0, 0])
        for i, n in s.execute(text("SELECT instance_id, count(*) FROM gpu_claims GROUP BY instance_id")):
            per_instance[i][0] = n
        for i, n in s.execute(text("SELECT instance_id, count(*) FROM cpu_claims GROUP BY instance_id")):
            per_instance[i][1] = n
        instances = list(s.execute(text("SELECT id, type_id, host_id FROM instances")))
        wrong = 0
        for i, type_id, _host in instances:
            plan = catalog.plan(type_id)
            if per_instance[i] != [plan.gpus, plan.vcpus]:
                wrong += 1
        if wrong:
            failures.append(f"{wrong} instances whose claims do not match their plan")
    sellable = sum(n for row in capacity(db, settings, REGION) for p, n in row["sellable"].items() if p in PLAN_MIX)
    if sellable:
        failures.append(f"capacity still sells {sellable} instances of the mix: the fill stopped early")
    return {"gpu_claims": gpu_rows, "cpu_claims": cpu_rows, "instances": len(instances), "failures": failures}


def _as_list(value) -> list[int]:
    if isinstance(value, str):
        import json

        value = json.loads(value)
    return [int(x) for x in value]


# --- what one create costs as candidate hosts grow -------------------------------------------------


def scaling(kind: str, sizes: list[int], creates: int, probe: Probe) -> list[dict]:
    """1 thread, one model (rtx6000-2s4g hosts, g1-gpu-rtx6000-1): median create latency."""
    out = []
    for size in sizes:
        with scratch(kind) as store:
            settings = store.settings()
            db = Database(store.url)
            try:
                register_fleet(db, settings, {(REGION, "rtx6000-2s4g"): size})
                account = accounts.create_account(db, "scale@example.com", username="scale")
                lat = []
                for i in range(creates + 3):
                    t = time.perf_counter()
                    create_instance(db, settings, account.id, "scale",
                                    NewInstance(type="g1-gpu-rtx6000-1", region=REGION, label=f"s-{i}", booted=False),
                                    bypass_flags=True)
                    if i >= 3:  # the first few warm the pool and caches
                        lat.append(time.perf_counter() - t)
                    probe.take()
                out.append({"kind": kind, "hosts": size, "p50": percentile(lat, 50), "p99": percentile(lat, 99)})
            finally:
                db.dispose()
    return out


# --- the run -----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run per configuration, a shorter scaling sweep")
    parser.add_argument("--runs", type=int, help="fills per configuration (default 3, --quick 1)")
    parser.add_argument("--hosts", type=int, default=50, help="simulated hosts (40%% rtx6000 4-GPU, 30%% "
                        "rtx4000ada 8-GPU, 30%% h100 8-GPU); default 50")
    parser.add_argument("--threads", type=int, default=4, help="competing threads (the baseline is 1); default 4")
    parser.add_argument("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--no-scaling", action="store_true", help="skip the create cost vs candidate hosts table")
    args = parser.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    print(f"# claims through the store: {machine()}")
    print(f"# {args.hosts} hosts ({', '.join(f'{p} {int(s * 100)}%' for p, s in FLEET_MIX.items())}), "
          f"{runs} fill(s) per configuration, plan mix: {', '.join(f'{p} {w:g}' for p, w in PLAN_MIX.items())}")
    probe = Probe()
    probe.install()
    try:
        rows, failed = [], False
        for kind in kinds:
            baseline = None
            for threads in sorted({1, args.threads}):
                fills = []
                for r in range(runs):
                    got = fill(kind, args.hosts, threads, seed=r, probe=probe)
                    fills.append(got)
                    print(f"  {kind} x{threads} run {r + 1}: {got['creates']} creates in {got['wall']:.2f} s "
                          f"({got['per_s']:.1f}/s), {got['retried']} attempts retried ({got['cas']} CAS, "
                          f"{got['unique']} unique key), {got['lost']} lost-race refusals; "
                          f"{got['gpu_claims']} GPU / {got['cpu_claims']} thread claims; "
                          f"{'OK' if not got['failures'] else 'FAILED: ' + '; '.join(got['failures'])}",
                          flush=True)
                    failed |= bool(got["failures"])
                per_s = statistics.median(f["per_s"] for f in fills)
                baseline = baseline or per_s
                lat = [x for f in fills for x in f["latencies"]]
                rows.append([kind, threads, f"{per_s:.1f}", f"{per_s / baseline:.2f}x",
                             f"{percentile(lat, 50) * 1000:.0f}", f"{percentile(lat, 99) * 1000:.0f}",
                             f"{statistics.median(f['retried'] / f['creates'] for f in fills) * 100:.1f}%",
                             f"{sum(f['cas'] for f in fills)} / {sum(f['unique'] for f in fills)}",
                             sum(f["lost"] for f in fills),
                             f"{statistics.median(f['creates'] for f in fills):.0f}",
                             "none" if not any(f["failures"] for f in fills) else "VIOLATED"])
        print()
        print(table(["database", "threads", "creates/s (median)", "vs 1 thread", "p50 ms", "p99 ms",
                     "attempts retried per create", "retries: CAS / unique key (all runs)",
                     "refused after lost races", "instances per fill", "double or non-NUMA claims"], rows))
        if not args.no_scaling:
            sizes = [10, 50] if args.quick else [10, 50, 200]
            scale_rows = []
            for kind in kinds:
                for r in scaling(kind, sizes, 10 if args.quick else 20, probe):
                    scale_rows.append([r["kind"], r["hosts"], f"{r['p50'] * 1000:.0f}", f"{r['p99'] * 1000:.0f}"])
            print()
            print(table(["database", "candidate hosts", "create p50 ms", "create p99 ms"], scale_rows))
        if failed:
            print("\nINVARIANT VIOLATED: see the run lines above", file=sys.stderr)
            sys.exit(1)
    finally:
        probe.uninstall()


if __name__ == "__main__":
    main()
