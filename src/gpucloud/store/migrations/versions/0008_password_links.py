"""operators: one-time root password links

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 20:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'password_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('instance_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('sealed', sa.String(length=512), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_password_links_instance_id_instances'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_password_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_password_links_token_hash')),
    )
    with op.batch_alter_table('password_links') as batch_op:
        batch_op.create_index(batch_op.f('ix_password_links_instance_id'), ['instance_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('password_links') as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_links_instance_id'))
    op.drop_table('password_links')
