"""admin sessions ended server-side; login throttles per username and address

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-30 16:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_sessions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_sessions'))
    )
    op.create_index(op.f('ix_admin_sessions_created_at'), 'admin_sessions', ['created_at'], unique=False)
    op.create_index(op.f('ix_admin_sessions_username'), 'admin_sessions', ['username'], unique=False)
    op.create_table('login_throttles',
    sa.Column('key', sa.String(length=320), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttles'))
    )


def downgrade() -> None:
    op.drop_table('login_throttles')
    op.drop_index(op.f('ix_admin_sessions_username'), table_name='admin_sessions')
    op.drop_index(op.f('ix_admin_sessions_created_at'), table_name='admin_sessions')
    op.drop_table('admin_sessions')
