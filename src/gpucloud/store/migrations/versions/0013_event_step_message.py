"""events: the step a job is at, apart from the event's own message

An event's `message` says why it happened (e.g. "Shut down: Your GPU trial ended on ...") or
why it failed; a job's steps ("Shutting down") used to overwrite it, so the customer lost the
reason as soon as a worker picked the job up. Steps now go to `step_message`, which the API
shows only while the event has no message of its own.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 02:10:00
"""

import sqlalchemy as sa
from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('events', sa.Column('step_message', sa.Text(), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.drop_column('step_message')
