"""image_copies: one copy task per image of a completed job, written in the job's transaction (the outbox)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "image_copies",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),  # the image's index in the job's images
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("claims", sa.Text),  # what the notification said of the file (format, dimensions, size_bytes)
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("due_at", TIME, nullable=False),  # a queued task is not claimed before (the retry's backoff)
        sa.Column("lease_until", TIME),  # a copying task whose lease ran out is claimed again
        sa.Column("lease_token", sa.String(36)),  # the claim's own token: only its copier may finish it
        sa.Column("last_error", sa.Text),
        sa.Column("sha256", sa.String(64)),
        sa.Column("bytes", sa.BigInteger),
        sa.Column("content_type", sa.String(32)),
        sa.Column("width", sa.Integer),
        sa.Column("height", sa.Integer),
        sa.Column("verified", sa.Boolean),
        sa.Column("mismatches", sa.Text),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("job_id", "position", name="image_copies_job_position"),
    )
    # the copiers' claim: the oldest due task first, among the unfinished ones only
    op.create_index("image_copies_due", "image_copies", ["state", "due_at"])
    # retention keeps a file that another job still uses
    op.create_index("image_copies_sha256", "image_copies", ["sha256"])


def downgrade() -> None:
    op.drop_table("image_copies")
