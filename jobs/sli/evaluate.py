"""SLI against the planted truth of the synthetic MSP (``truth/idle_seats.csv``, ``truth/licence_shortfalls.csv``).

The truth is never read by a stage: this module compares the published tables with it, for the tests and
``msp sli evaluate``. Idle seats are compared three ways, from the strictest: **runs** (user, SKU, first and
last idle report: the truth's rows), **seats** (user and SKU ever idle) and **seat-reports** (user, SKU and
report). Every difference is classified: a user who never shows any activity has no date in the export to
count 90 days from except the first report showing the licence (the report carries no assignment date), so
their idle run may start a report earlier or later than the generator's, which knows the day it assigned it.
Shortfall episodes are compared whole (tenant, SKU, first and last snapshot, snapshots, largest shortfall).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Comparison:
    found: set[tuple]
    truth: set[tuple]

    @property
    def matched(self) -> set[tuple]:
        return self.found & self.truth

    @property
    def precision(self) -> float:
        return len(self.matched) / len(self.found) if self.found else 1.0

    @property
    def recall(self) -> float:
        return len(self.matched) / len(self.truth) if self.truth else 1.0

    @property
    def exact(self) -> bool:
        return self.found == self.truth

    def line(self, what: str) -> str:
        return (f"{what}: found {len(self.found)}, truth {len(self.truth)}, matched {len(self.matched)}, "
                f"precision {self.precision:.4f}, recall {self.recall:.4f}")


@dataclass
class Evaluation:
    idle_runs: Comparison
    idle_seats: Comparison
    idle_seat_reports: Comparison
    shortfalls: Comparison
    shortfall_events: Comparison
    explained: dict[str, list[tuple]] = field(default_factory=dict)
    unexplained: list[tuple] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [self.shortfalls.line("shortfall episodes"),
               self.shortfall_events.line("shortfall episodes opened as events"),
               self.idle_runs.line("idle seat runs (user, SKU, first, last report)"),
               self.idle_seats.line("idle seats (user, SKU)"),
               self.idle_seat_reports.line("idle seat-reports (user, SKU, report)")]
        for why, rows in self.explained.items():
            out.append(f"  {len(rows)} differing run(s): {why}")
        out.append(f"  {len(self.unexplained)} unexplained difference(s)" +
                   (f": {self.unexplained[:5]}" if self.unexplained else ""))
        return out


def _iso(v: Any) -> str:
    return v if isinstance(v, str) else v.isoformat()


def read_truth(folder: str | Path, name: str) -> list[dict[str, str]]:
    with open(Path(folder) / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def idle_runs(activity: Iterable[Mapping[str, Any]]) -> dict[tuple, dict[str, Any]]:
    """(user, SKU, first, last report) of each idle run in ``processed.licence_user_activity`` rows, with the
    activity bases seen in it."""
    runs: dict[tuple, dict[str, Any]] = {}
    for r in activity:
        if not r["idle"]:
            continue
        k = (r["user_principal_name"], r["sku_part_number"], _iso(r["idle_since_report"]))
        cur = runs.setdefault(k, {"last": _iso(r["report_date"]), "bases": set(), "reports": set()})
        cur["last"] = max(cur["last"], _iso(r["report_date"]))
        cur["bases"].add(r["activity_basis"])
        cur["reports"].add(_iso(r["report_date"]))
    return {(u, s, first, v["last"]): v for (u, s, first), v in runs.items()}


def shortfall_episodes(position: Iterable[Mapping[str, Any]]) -> set[tuple]:
    """(client, SKU, first, last snapshot, snapshots, largest shortfall) of each shortfall episode."""
    eps: dict[tuple, list] = {}
    for r in position:
        if not r["shortfall"]:
            continue
        k = (r["client_id"], r["sku_part_number"], _iso(r["shortfall_episode_opened"]))
        e = eps.setdefault(k, [_iso(r["snapshot_date"]), _iso(r["snapshot_date"]), 0, 0])
        e[0], e[1] = min(e[0], _iso(r["snapshot_date"])), max(e[1], _iso(r["snapshot_date"]))
        e[2] += 1
        e[3] = max(e[3], int(r["shortfall"]))
    return {(c, s, v[0], v[1], v[2], v[3]) for (c, s, _), v in eps.items()}


def evaluate(activity: list[Mapping[str, Any]], position: list[Mapping[str, Any]], events: list[Mapping[str, Any]],
             truth_dir: str | Path) -> Evaluation:
    """Compare the tables' rows (and the outbox envelopes of ``license.compliance.violation``) with the truth
    (truth rows that start after the last report or snapshot of the tables are left out: a lake may hold fewer
    days than the truth covers)."""
    truth_idle = read_truth(truth_dir, "idle_seats.csv")
    truth_short = read_truth(truth_dir, "licence_shortfalls.csv")
    last_report = max((_iso(r["report_date"]) for r in activity), default="")
    last_snapshot = max((_iso(r["snapshot_date"]) for r in position), default="")
    truth_idle = [r for r in truth_idle if r["first_idle_snapshot"] <= last_report]
    truth_short = [r for r in truth_short if r["first_snapshot"] <= last_snapshot]
    runs = idle_runs(activity)
    t_runs = {(r["user_principal_name"], r["sku_part_number"], r["first_idle_snapshot"], r["last_idle_snapshot"])
              for r in truth_idle}
    reports = sorted({_iso(r["report_date"]) for r in activity})
    t_reports = {(u, s, d) for (u, s, a, b) in t_runs for d in reports if a <= d <= b}
    f_reports = {(u, s, d) for (u, s, _, _), v in runs.items() for d in v["reports"]}
    found_short = shortfall_episodes(position)
    t_short = {(r["client_id"], r["sku_part_number"], r["first_snapshot"], r["last_snapshot"], int(r["snapshots"]),
                int(r["max_shortfall"])) for r in truth_short}
    opened = set()
    for e in events:
        d = e["data"]
        if d.get("violation_kind") == "shortfall" and e.get("episode", {}).get("state") == "opened":
            opened.add((d["client_id"], d["sku"], e["episode"]["opened"]))
    t_opened = {(c, s, a) for (c, s, a, *_rest) in t_short}
    ev = Evaluation(Comparison(set(runs), t_runs), Comparison({k[:2] for k in runs}, {k[:2] for k in t_runs}),
                    Comparison(f_reports, t_reports), Comparison(found_short, t_short), Comparison(opened, t_opened))
    never = "the user never shows any activity: idle counts from the first report showing the licence (the export " \
            "has no assignment date), or at once when it predates the lake's first report"
    bases = {}
    for (u, s, _a, _b), v in runs.items():
        bases.setdefault((u, s), set()).update(v["bases"])
    for k in sorted(ev.idle_runs.found ^ ev.idle_runs.truth):
        b = bases.get(k[:2], set())
        if b and "activity" not in b:
            ev.explained.setdefault(never, []).append(k)
        elif not b:  # a truth run the lake has no idle row of at all
            seen = [r for r in activity if (r["user_principal_name"], r["sku_part_number"]) == k[:2]]
            if seen and all(r["last_activity_date"] is None for r in seen):
                ev.explained.setdefault(never, []).append(k)
            else:
                ev.unexplained.append(k)
        else:
            ev.unexplained.append(k)
    return ev


def evaluate_lake(settings, truth_dir: str | Path | None = None) -> Evaluation:
    """:func:`evaluate` on a lake's published tables."""
    import json

    import schemas
    from lakehouse.lake import Lake

    lake = Lake.from_settings(settings)
    activity = lake.read_arrow(schemas.get("processed.licence_user_activity")).to_pylist()
    position = lake.read_arrow(schemas.get("processed.licence_position")).to_pylist()
    outbox = lake.read_arrow(schemas.get("events.outbox"), {"event_type": "license.compliance.violation"})
    events = [json.loads(e) for e in outbox.column("envelope").to_pylist()]
    return evaluate(activity, position, events, truth_dir or settings.truth_root)
