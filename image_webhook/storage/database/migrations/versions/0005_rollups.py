"""rollups: the monitoring's counters and histograms in time buckets, backfilled from the records

Revision ID: 0005
Revises: 0004

One row per (metric, width, bucket, label): bucket is the start of a `width`-second bucket in epoch seconds (0 for
a current-state counter: the copies by state), label a histogram bin or a model; n, total and peak are summed,
summed and maxed by the upserts of the writes (storage/database/rollups.py). The backfill below counts what the
records of the last 8 days hold, as the writes would have (and the copies by state, all of them).
"""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WIDTHS = (60, 1800)  # rollups.WIDTHS (a migration never imports the code it migrates for: the code changes)
KEPT_DAYS = 8
RATIO = 1.05
SIZE_LIMITS = (100_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000)

DIALECTS = {
    "sqlite": {
        "epoch": "CAST(strftime('%s', {time}) AS INTEGER)",
        "since": ":since",
        "number": "json_extract({json}, '$.{field}')",
        "is_number": "json_type({json}, '$.{field}') IN ('integer', 'real')",
        "model": "CASE WHEN json_type(metadata, '$.model_name') = 'text' "
        "THEN json_quote(json_extract(metadata, '$.model_name')) ELSE 'null' END",
        "each_image": "json_each(jobs.images) AS image",
    },
    "postgresql": {
        "epoch": "CAST(floor(extract(epoch FROM {time})) AS bigint)",
        "since": "CAST(:since AS timestamptz)",
        "number": "CAST({json} ->> '{field}' AS double precision)",
        "is_number": "jsonb_typeof({json} -> '{field}') = 'number'",
        "model": "CASE WHEN jsonb_typeof(metadata -> 'model_name') = 'string' "
        "THEN CAST(to_jsonb(metadata ->> 'model_name') AS text) ELSE 'null' END",
        "each_image": "jsonb_array_elements(jobs.images) AS image(value)",
    },
}

INSERT = "INSERT INTO rollups (metric, width, bucket, label, n, total, peak) "
OUTCOMES = """SELECT status, {width}, {bucket}, '', COUNT(*), 0, NULL FROM jobs
WHERE created_at >= {since} AND status IN ('completed', 'failed') GROUP BY status, {bucket}"""
PROCESSING = """SELECT 'processing', {width}, bucket, bin, COUNT(*), SUM(ms), MAX(ms) FROM
(SELECT {bucket} AS bucket, processing_time_ms AS ms, CASE WHEN processing_time_ms > 0
THEN CAST(CAST(floor(ln(processing_time_ms) / ln({ratio})) AS bigint) AS text) ELSE 'zero' END AS bin
FROM jobs WHERE created_at >= {since} AND processing_time_ms IS NOT NULL) AS timed GROUP BY bucket, bin"""
DUPLICATES = """SELECT 'duplicates', {width}, {delivery_bucket}, '', COUNT(*), 0, NULL FROM deliveries
WHERE received_at >= {since} AND (outcome = 'duplicate' OR reason = 'duplicate') GROUP BY {delivery_bucket}"""
IMAGE_SIZES = """SELECT 'image_size', {width}, bucket, CAST(bin AS text), COUNT(*), COALESCE(SUM(size), 0), NULL
FROM (SELECT {bucket} AS bucket, size, {size_bin} AS bin FROM
(SELECT jobs.created_at, {size} AS size FROM jobs, {each_image} WHERE jobs.created_at >= {since}
AND jobs.status = 'completed') AS images) AS sized GROUP BY bucket, bin"""
MODELS = """SELECT 'model', {width}, {bucket}, {model}, COUNT(*), 0, NULL FROM jobs
WHERE created_at >= {since} AND status = 'completed' GROUP BY {bucket}, {model}"""
GENERATION = """SELECT 'generation', {width}, {bucket}, {model}, COUNT(*), SUM({generation}), MAX({generation})
FROM jobs WHERE created_at >= {since} AND status = 'completed' AND {timed} GROUP BY {bucket}, {model}"""
COPIES = "SELECT 'copies', 0, 0, state, COUNT(*), 0, NULL FROM image_copies GROUP BY state"


def upgrade() -> None:
    op.create_table(
        "rollups",
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),  # seconds; 0: not in time (a current state)
        sa.Column("bucket", sa.BigInteger, nullable=False),  # the bucket's start, epoch seconds
        sa.Column("label", sa.String(160), nullable=False),  # a histogram bin, a size bin, a model as JSON, a state
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("peak", sa.Float),
        sa.PrimaryKeyConstraint("metric", "width", "bucket", "label", name="rollups_pkey"),
    )
    bind = op.get_bind()
    words = DIALECTS[bind.dialect.name]
    since = (datetime.now(UTC) - timedelta(days=KEPT_DAYS)).isoformat(timespec="microseconds")
    bins = " ".join(f"WHEN size < {limit} THEN {number}" for number, limit in enumerate(SIZE_LIMITS))
    generation = words["number"].format(json="metadata", field="generation_time_seconds")
    for width in WIDTHS:
        fragments = {
            "width": str(width),
            "bucket": f"({words['epoch'].format(time='created_at')} / {width} * {width})",
            "delivery_bucket": f"({words['epoch'].format(time='received_at')} / {width} * {width})",
            "since": words["since"],
            "ratio": str(RATIO),
            "size": words["number"].format(json="image.value", field="size_bytes"),
            "size_bin": f"CASE WHEN size IS NULL THEN -1 {bins} ELSE {len(SIZE_LIMITS)} END",
            "each_image": words["each_image"],
            "model": words["model"],
            "generation": generation,
            "timed": words["is_number"].format(json="metadata", field="generation_time_seconds"),
        }
        for query in (OUTCOMES, PROCESSING, DUPLICATES, IMAGE_SIZES, MODELS, GENERATION):
            bind.execute(sa.text(INSERT + query.format(**fragments)), {"since": since})
    bind.execute(sa.text(INSERT + COPIES))


def downgrade() -> None:
    op.drop_table("rollups")
