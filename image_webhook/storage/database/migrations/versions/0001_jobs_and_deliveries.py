"""jobs and deliveries: the spec's ImageGeneration model, and every delivery as it arrived

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
TIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")  # SQLite: ISO 8601 UTC text, sorts as time
JSON = postgresql.JSONB().with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(128), nullable=False, unique=True),  # the spec's externalJobId
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float),
        sa.Column("message", sa.Text),
        sa.Column("prompt", sa.Text),
        sa.Column("images", JSON),
        sa.Column("metadata", JSON),
        sa.Column("error_message", sa.Text),
        sa.Column("user_id", sa.String(128)),
        sa.Column("organization_id", sa.String(128)),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("completed_at", TIME),
        sa.Column("processing_time_ms", sa.Float),
        sa.Column("deliveries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("jobs_user_id", "jobs", ["user_id"])
    op.create_index("jobs_organization_id", "jobs", ["organization_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(256)),  # as received: a refused delivery's job may exist nowhere else
        sa.Column("status", sa.String(32)),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("raw_body", sa.LargeBinary),
        sa.Column("message_id", sa.String(256)),
        sa.Column("client_address", sa.String(64)),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("response_status", sa.Integer, nullable=False),
        sa.Column("response_body", sa.Text),
    )
    op.create_index("deliveries_job_id_received_at", "deliveries", ["job_id", "received_at"])
    op.create_index("deliveries_received_at", "deliveries", ["received_at"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("jobs")
