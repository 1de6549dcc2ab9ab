"""hosts.cpu_layout_key: hosts of one CPU layout share one read of it

A region's load read every host's `cpus` rows (~1.3 million at 10,000 hosts), although the
hosts of a hardware profile have the same threads. With the key of its layout on each host
(`store.fleet.cpu_layout_key`, written at registration), the load reads one host's threads
per key (`store.host_states`). Existing hosts get theirs from their rows here. A host without
one (registered by a process older than this revision) is read on its own.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 01:10:00
"""

import sqlalchemy as sa
from alembic import op

from gpucloud.store.fleet import cpu_layout_key

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

BATCH = 500  # hosts per read (~65,000 thread rows)

hosts = sa.table('hosts', sa.column('id', sa.Integer), sa.column('cpu_layout_key', sa.String))
cpus = sa.table('cpus', sa.column('host_id', sa.Integer), sa.column('numa_node_id', sa.Integer),
                sa.column('cpu_index', sa.Integer), sa.column('socket_id', sa.Integer),
                sa.column('core_id', sa.Integer), sa.column('siblings', sa.JSON), sa.column('reserved', sa.Boolean))
numa_nodes = sa.table('numa_nodes', sa.column('id', sa.Integer), sa.column('node_index', sa.Integer))


def upgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cpu_layout_key', sa.String(length=64), nullable=True))
    backfill(op.get_bind())


def backfill(db: sa.Connection) -> None:
    """Every host's key, from its `cpus` rows."""
    ids = list(db.execute(sa.select(hosts.c.id).order_by(hosts.c.id)).scalars())
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        threads: dict[int, list] = {host_id: [] for host_id in batch}
        for host_id, *thread in db.execute(
            sa.select(cpus.c.host_id, cpus.c.cpu_index, numa_nodes.c.node_index, cpus.c.socket_id, cpus.c.core_id,
                      cpus.c.siblings, cpus.c.reserved)
            .join(numa_nodes, numa_nodes.c.id == cpus.c.numa_node_id).where(cpus.c.host_id.in_(batch))
        ):
            threads[host_id].append(thread)
        db.execute(sa.update(hosts).where(hosts.c.id == sa.bindparam('host_id'))
                   .values(cpu_layout_key=sa.bindparam('key')),
                   [{'host_id': host_id, 'key': cpu_layout_key(rows)} for host_id, rows in threads.items()])


def downgrade() -> None:
    # Not SQLite's batch mode: it rebuilds `hosts`, and dropping the old table deletes what
    # cascades from it (every host's NUMA nodes, threads and GPUs). SQLite drops a column itself.
    op.drop_column('hosts', 'cpu_layout_key')
