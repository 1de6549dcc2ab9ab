"""Memory each instance holds on each NUMA node of a host, for the admin topology picture."""

from __future__ import annotations

from collections import defaultdict

from gpucloud.store.db import Database
from gpucloud.store.fleet import memory_claims_of_hosts, node_rows_by_index


def memory_by_instance(db: Database, host_id: int) -> dict[int, dict[int, int]]:
    """node index -> instance id -> MiB claimed there."""
    with db.read() as s:
        index_of = {row.id: index for index, row in node_rows_by_index(s, host_id).items()}
        held: dict[int, dict[int, int]] = defaultdict(dict)
        for claim in memory_claims_of_hosts(s, [host_id]):
            node = index_of[claim.numa_node_id]
            held[node][claim.instance_id] = held[node].get(claim.instance_id, 0) + claim.memory_mib
        return dict(held)
