"""placement view: hosts by region and generation; job wake-ups on PostgreSQL

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 16:30:00

- `ix_hosts_region_generation`: a process asks "which hosts of this region changed past
  generation G" on every placement (`store.host_states`).
- PostgreSQL only: a job entering `queued` (inserted, or queued again) notifies channel
  `gpucloud_jobs` at commit, so idle workers listening there wake at once instead of polling
  (`jobs.wakeup`). SQLite has no notifications; its workers poll.
"""

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

NOTIFY_FUNCTION = """
CREATE OR REPLACE FUNCTION gpucloud_job_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gpucloud_jobs', '');
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.create_index('ix_hosts_region_generation', ['region_id', 'generation'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(NOTIFY_FUNCTION)
        op.execute("CREATE TRIGGER jobs_inserted_queued AFTER INSERT ON jobs FOR EACH ROW "
                   "WHEN (NEW.state = 'queued') EXECUTE FUNCTION gpucloud_job_queued()")
        op.execute("CREATE TRIGGER jobs_queued_again AFTER UPDATE OF state ON jobs FOR EACH ROW "
                   "WHEN (NEW.state = 'queued' AND OLD.state <> 'queued') EXECUTE FUNCTION gpucloud_job_queued()")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS jobs_queued_again ON jobs")
        op.execute("DROP TRIGGER IF EXISTS jobs_inserted_queued ON jobs")
        op.execute("DROP FUNCTION IF EXISTS gpucloud_job_queued()")
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_index('ix_hosts_region_generation')
