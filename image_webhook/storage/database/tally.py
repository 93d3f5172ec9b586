"""The rollups' changes of the writer's transaction: staged by its writes, written last in it (rollups.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

WIDTHS = (60, 1800)  # minute buckets (the hour's plot), half-hour buckets (the day's and the week's)
CHUNK = 400  # rows per upsert statement (7 parameters each: under every driver's limit)

# the greater of the kept and the new peak (either may be NULL)
PEAK = {
    "sqlite": "MAX(COALESCE(rollups.peak, excluded.peak), COALESCE(excluded.peak, rollups.peak))",
    "postgresql": "GREATEST(rollups.peak, excluded.peak)",
}
UPSERT = """INSERT INTO rollups (metric, width, bucket, label, n, total, peak) VALUES {rows}
ON CONFLICT (metric, width, bucket, label) DO UPDATE SET n = rollups.n + excluded.n,
total = rollups.total + excluded.total, peak = {peak}"""
Key = tuple[str, int, int, str]  # metric, width, bucket, label


class Tally:
    """The rollup changes of the writer's transaction: staged by each write, kept when its savepoint is, written
    by `flush` last in the transaction, merged and sorted: one upsert statement per batch, and the rows always
    locked in the same order (two writers never wait for each other in a cycle). Used by the writer thread only."""

    def __init__(self, dialect: str, sql: Callable[[str], str]) -> None:
        self.dialect = dialect
        self.sql = sql
        self.kept: dict[Key, list[Any]] = {}
        self.staged: list[tuple[Key, int, float, float | None]] = []

    def add(
        self, metric: str, width: int, bucket: int, label: str, n: int, total: float = 0.0, peak: Any = None
    ) -> None:
        self.staged.append(((metric, width, bucket, label), n, total, peak))

    def count(
        self, metric: str, moment: float, label: str = "", n: int = 1, total: float = 0.0, peak: Any = None
    ) -> None:
        """Count in the buckets of every width holding `moment` (epoch seconds)."""
        for width in WIDTHS:
            self.add(metric, width, int(moment // width) * width, label, n, total, peak)

    def begin(self) -> None:
        self.kept.clear()
        self.staged.clear()

    def settle(self, kept: bool) -> None:
        """The write ended: its changes join the transaction's, or are dropped with its savepoint."""
        if kept:
            for key, n, total, peak in self.staged:
                row = self.kept.setdefault(key, [0, 0.0, None])
                row[0] += n
                row[1] += total
                row[2] = higher(row[2], peak)
        self.staged.clear()

    def flush(self, connection: Any) -> None:
        if not self.kept:
            return
        self.add("changes", 60, int(time.time() // 60) * 60, "", 1)
        self.settle(True)
        rows = sorted(self.kept.items())
        self.kept.clear()
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            values: dict[str, Any] = {}
            for i, ((metric, width, bucket, label), (n, total, peak)) in enumerate(chunk):
                values |= {f"m{i}": metric, f"w{i}": width, f"b{i}": bucket, f"l{i}": label}
                values |= {f"n{i}": n, f"t{i}": total, f"p{i}": peak}
            connection.execute(self.sql(_upsert(self.dialect, len(chunk))), values)


def higher(kept: Any, new: Any) -> Any:
    """The greater of two peaks, either of which may be None (nothing timed): the upserts' PEAK, in Python."""
    return kept if new is None or (kept is not None and kept >= new) else new


@cache
def _upsert(dialect: str, count: int) -> str:
    rows = ", ".join(f"(:m{i}, :w{i}, :b{i}, :l{i}, :n{i}, :t{i}, :p{i})" for i in range(count))
    return UPSERT.format(rows=rows, peak=PEAK[dialect])
