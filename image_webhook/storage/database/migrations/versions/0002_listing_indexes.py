"""indexes for listing jobs newest first, by status, owner or organization (keyset pages)

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "jobs_created_at_id": ["created_at", "id"],
    "jobs_status_created_at_id": ["status", "created_at", "id"],
    "jobs_user_id_created_at_id": ["user_id", "created_at", "id"],
    "jobs_organization_id_created_at_id": ["organization_id", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns)
    # the composite indexes lead with the single-column ones of 0001, which they make redundant
    op.drop_index("jobs_user_id", "jobs")
    op.drop_index("jobs_organization_id", "jobs")


def downgrade() -> None:
    op.create_index("jobs_user_id", "jobs", ["user_id"])
    op.create_index("jobs_organization_id", "jobs", ["organization_id"])
    for name in INDEXES:
        op.drop_index(name, "jobs")
