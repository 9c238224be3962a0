"""Row by row comparison of two databases' decisions (replay.registry tables).

Both sides run the same query, ordered by its key columns with byte order
(``COLLATE "C"``, which is Python's order of ``str``), and are walked
together through server-side cursors: memory stays bounded whatever the
size. A row only on one side, or with the same key and other values, is a
difference; the first few of each table are kept for the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from replay.registry import ComparedTable, compared_tables

SHOWN = 5
_FETCH = 5_000


@dataclass
class Difference:
    key: tuple[Any, ...]
    recorded: tuple[Any, ...] | None
    replayed: tuple[Any, ...] | None

    def describe(self, columns: list[str]) -> str:
        key = ", ".join(f"{c}={v}" for c, v in zip(columns, self.key, strict=False))
        if self.replayed is None:
            return f"{key}: only in the original"
        if self.recorded is None:
            return f"{key}: only in the replay"
        changed = [
            f"{name}: {old!s} -> {new!s}"
            for name, old, new in zip(columns, self.recorded, self.replayed, strict=True)
            if old != new
        ]
        return f"{key}: " + "; ".join(changed)


@dataclass
class TableComparison:
    name: str
    columns: list[str] = field(default_factory=list)
    rows: int = 0
    different: int = 0
    shown: list[Difference] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.different == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.name,
            "rows": self.rows,
            "different": self.different,
            "first_differences": [d.describe(self.columns) for d in self.shown],
        }


def _rows(
    conn: psycopg.Connection[Any], table: ComparedTable, columns: list[str]
) -> Iterator[tuple[Any, ...]]:
    with conn.cursor(name="replay_compare") as cursor:
        cursor.itersize = _FETCH
        cursor.execute(table.query)
        if cursor.description is not None:
            columns[:] = [c.name for c in cursor.description]
        for row in cursor:
            yield tuple(row)


def compare_table(
    recorded: psycopg.Connection[Any], replayed: psycopg.Connection[Any], table: ComparedTable
) -> TableComparison:
    result = TableComparison(table.name)
    ignored: list[str] = []
    left = _rows(recorded, table, result.columns)
    right = _rows(replayed, table, ignored)
    n = table.key_columns
    a = next(left, None)
    b = next(right, None)
    while a is not None or b is not None:
        result.rows += 1
        if b is None or (a is not None and a[:n] < b[:n]):
            difference = Difference(a[:n], a, None) if a is not None else None
            a = next(left, None)
        elif a is None or b[:n] < a[:n]:
            difference = Difference(b[:n], None, b)
            b = next(right, None)
        else:
            difference = None if a == b else Difference(a[:n], a, b)
            a, b = next(left, None), next(right, None)
        if difference is not None:
            result.different += 1
            if len(result.shown) < SHOWN:
                result.shown.append(difference)
    return result


def compare(recorded_url: str, replayed_url: str) -> list[TableComparison]:
    """Every registered table, in both databases, each in one snapshot."""
    results = []
    with psycopg.connect(recorded_url) as recorded, psycopg.connect(replayed_url) as replayed:
        for conn in (recorded, replayed):
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        for table in compared_tables():
            results.append(compare_table(recorded, replayed, table))
    return results
