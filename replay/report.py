"""The replay report: what was rebuilt, and whether it is the same.

Identical means: every compared table (replay.registry) has the same rows,
every job run ended as the original did (an abandoned original may end in
any way), and no action the original accepted was refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from replay import scratch
from replay.compare import SHOWN, TableComparison, compare
from replay.rebuild import ReplayCounts


@dataclass
class Report:
    counts: ReplayCounts
    replayed_in: float
    tables: list[TableComparison] = field(default_factory=list)

    @property
    def run_differences(self) -> list[tuple[int, str, str, str, str]]:
        return [
            outcome
            for outcome in self.counts.outcomes
            if outcome[3] != outcome[4] and outcome[3] != "abandoned"
        ]

    @property
    def identical(self) -> bool:
        return (
            all(t.identical for t in self.tables)
            and not self.run_differences
            and not self.counts.refused
        )

    def text(self) -> str:
        c = self.counts
        lines = [
            f"replayed positions 1-{c.head:,} in {self.replayed_in:.1f} s: {c.facts:,} facts,"
            f" {c.actions:,} actions performed again, {c.records:,} records,"
            f" {c.runs:,} job runs ({c.runs_failed:,} failed as they did or not)",
        ]
        for table in self.tables:
            verdict = "identical" if table.identical else f"{table.different:,} different"
            lines.append(f"  {table.name}: {table.rows:,} rows, {verdict}")
            lines.extend(f"    {d.describe(table.columns)}" for d in table.shown)
        runs = self.run_differences
        if runs:
            lines.append(f"  job runs ending otherwise: {len(runs):,}")
            lines.extend(
                f"    run #{run_id} {job} [{key}]: {was} -> {now}"
                for run_id, job, key, was, now in runs[:SHOWN]
            )
        if c.refused:
            lines.append(f"  actions refused in the replay: {len(c.refused):,}")
            lines.extend(f"    {event_id}: {why}" for event_id, why in c.refused[:SHOWN])
        lines.append("IDENTICAL" if self.identical else "DIFFERENT")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "identical": self.identical,
            "head": c.head,
            "facts": c.facts,
            "actions": c.actions,
            "records": c.records,
            "job_runs": c.runs,
            "seconds": round(self.replayed_in, 3),
            "tables": [t.as_dict() for t in self.tables],
            "job_runs_ending_otherwise": [
                {"run": r, "job": j, "key": k, "original": was, "replay": now}
                for r, j, k, was, now in self.run_differences
            ],
            "actions_refused": [{"event_id": e, "why": w} for e, w in c.refused],
        }


def compare_databases(source_url: str, counts: ReplayCounts, *, replayed_in: float) -> Report:
    """Compare the source with this database (where the replay was written)."""
    report = Report(counts, replayed_in)
    report.tables = compare(source_url, scratch.url_of(scratch.current_database()))
    return report
