"""instances by region, newest first: where a create's next IPv4 address search starts

A create gives the next free address after the region's newest instance's (issue #11): this
index makes finding that instance one index step instead of a scan of the region's rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 22:40:00
"""

from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_instances_region_id_id', 'instances', ['region_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_instances_region_id_id', table_name='instances')
