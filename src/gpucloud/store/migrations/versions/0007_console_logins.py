"""console: customer passwords; console access tokens beside personal ones

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30 19:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
    with op.batch_alter_table('api_tokens') as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='personal', nullable=False))
        batch_op.create_check_constraint('kind_valid', "kind IN ('personal', 'console')")


def downgrade() -> None:
    with op.batch_alter_table('api_tokens') as batch_op:
        batch_op.drop_constraint('kind_valid', type_='check')  # named by the naming convention, as created
        batch_op.drop_column('kind')
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('password_hash')
