"""an index on deliveries.message_id: a replayed signed message is found whatever worker or host handled it

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("deliveries_message_id", "deliveries", ["message_id"])


def downgrade() -> None:
    op.drop_index("deliveries_message_id", "deliveries")
