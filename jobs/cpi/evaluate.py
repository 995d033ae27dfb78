"""Evaluate the CPI agent end to end on a generated MSP: profitability against the planted truth (to the
cent), and the churn model against its rules baseline on the later months.

    python -m jobs.cpi.evaluate --scale small          # or: msp cpi evaluate --scale small

It generates the scale's default window into a fresh home (or ``--home``), runs every stage the CPI agent
needs (ingestion, the quality gate, the CPI daily stages) over the whole window, trains the churn model,
scores the window with it (and recomputes what reads the scores), then compares
``processed.client_profitability_monthly`` with ``<truth>/profitability_monthly.csv`` and prints the churn
model's metrics from the registry. The truth is read here only, never by the agent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings

#: truth column → our column (processed.client_profitability_monthly)
TRUTH_COLUMNS = {"billed_revenue": "billed", "addition_cost": "addition_cost", "labour_hours": "labour_hours",
                 "labour_cost": "labour_cost", "profit": "profit", "margin_pct": "margin_pct",
                 "effective_hourly_rate": "effective_hourly_rate"}


@dataclass
class TruthComparison:
    truth_rows: int
    our_rows: int
    matched_rows: int
    missing: list[tuple[str, str]] = field(default_factory=list)  #: in the truth, not in ours
    extra: list[tuple[str, str]] = field(default_factory=list)  #: ours with money or hours, not in the truth
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, int] = field(default_factory=dict)  #: column → rows that differ

    @property
    def exact(self) -> bool:
        return not (self.missing or self.extra or self.mismatches)


def _dec(x) -> Decimal | None:
    if x is None or (isinstance(x, float) and x != x) or x == "":
        return None
    return Decimal(str(x))


def compare_profitability(ours: pd.DataFrame, truth: pd.DataFrame) -> TruthComparison:
    """Compare client-month rows exactly (Decimal equality, to the cent). Our rows with no money and no
    hours (a month with only endpoint counts or tickets) have no truth row and are not extra."""
    t = {(r["client_id"], r["month"]): r for r in truth.to_dict("records")}
    o = {(r["client_id"], r["month"]): r for r in ours.to_dict("records")}

    def substantive(r) -> bool:
        return any((_dec(r[c]) or 0) != 0 for c in ("billed", "addition_cost", "labour_hours"))

    out = TruthComparison(len(t), len(o), 0, columns=dict.fromkeys(TRUTH_COLUMNS, 0))
    out.missing = sorted(k for k in t if k not in o)
    out.extra = sorted(k for k, r in o.items() if k not in t and substantive(r))
    for key in sorted(set(t) & set(o)):
        diffs = {}
        for tc, oc in TRUTH_COLUMNS.items():
            a, b = _dec(t[key][tc]), _dec(o[key][oc])
            if a != b:
                diffs[tc] = (str(a), str(b))
                out.columns[tc] += 1
        if diffs:
            out.mismatches.append({"client_id": key[0], "month": key[1], **diffs})
        else:
            out.matched_rows += 1
    return out


def truth_frame(truth_root: str | Path) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(Path(truth_root) / "profitability_monthly.csv", dtype=str, keep_default_na=False)


def compare_lake(settings: Settings) -> TruthComparison:
    import schemas
    from lakehouse.lake import Lake

    ours = Lake.from_settings(settings).read_pandas(schemas.get("processed.client_profitability_monthly"))
    return compare_profitability(ours, truth_frame(settings.truth_root))


def model_report(settings: Settings) -> dict[str, Any] | None:
    """Metrics of the latest stored churn model version (and whether it is the current one)."""
    from lakehouse.lake import Lake
    from lakehouse.model_registry import ModelRegistry
    from models.cpi.train import MODEL_NAME

    registry = ModelRegistry(Lake.from_settings(settings), MODEL_NAME)
    versions = registry.versions()
    if not versions:
        return None
    mv = registry.get(versions[-1])
    cur = registry.current()
    return {"version": mv.version, "current": cur.version if cur else None, "metrics": mv.metrics,
            "split": mv.extra.get("split"), "primary_metric": mv.primary_metric}


def print_report(comparison: TruthComparison, model: dict[str, Any] | None, out=print) -> None:
    out("Profitability vs planted truth (client x month, exact to the cent)")
    out(f"  truth rows {comparison.truth_rows}, our rows {comparison.our_rows}, "
        f"matched exactly {comparison.matched_rows}, mismatched {len(comparison.mismatches)}, "
        f"missing {len(comparison.missing)}, extra {len(comparison.extra)}")
    out("  per column (rows that differ): " + ", ".join(f"{k} {v}" for k, v in comparison.columns.items()))
    for m in comparison.mismatches[:10]:
        out(f"    {m}")
    if model is None:
        out("Churn model: not trained (see the run warnings)")
        return
    out(f"Churn model {model['version']} (current: {model['current']}), split: {json.dumps(model['split'])}")
    def fmt(v) -> str:
        return "n/a" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    names = ["rows", "positives", "base_rate", "roc_auc", "pr_auc", "lift_top_decile", "brier", "ece"]
    base = model["metrics"].get("baseline", {})
    out(f"  {'metric':<16}{'model':>12}{'rules baseline':>16}")
    for n in names:
        a, b = model["metrics"].get(n), base.get(n)
        out(f"  {n:<16}{fmt(a):>12}{fmt(b):>16}")


def run_evaluation(settings: Settings, scale: str, seed: int, out=print) -> tuple[TruthComparison, dict | None]:
    """Generate (if the landing area is empty), run the CPI agent over the window, compare, report."""
    from datetime import date

    from lakehouse.context import date_range
    from lakehouse.runner import run_pipeline
    from lakehouse.synth import generate

    landing = Path(settings.landing_root)
    t0 = time.perf_counter()
    if not landing.exists() or not any(landing.iterdir()):
        report = generate(scale, seed, landing, Path(settings.truth_root))
        out(f"generated scale {scale} seed {seed}: {report.total_rows:,} rows in {report.seconds:.0f} s")
    from jobs.cpi import AGENT

    manifest = json.loads((Path(settings.truth_root) / "manifest.json").read_text())
    first, last = date.fromisoformat(manifest["window_first_day"]), date.fromisoformat(manifest["window_last_day"])
    days = date_range(first, last)
    scored = [s.name for s in AGENT.stages if s.kind == "score" or "analytics.churn" in s.reads]
    runs = {"daily stages": run_pipeline(settings, days, agents=["cpi"], refresh_catalog=False),
            "training": run_pipeline(settings, days, agents=["cpi"], kinds=["train"], refresh_catalog=False),
            # forced: the promoted model is not among the scoring stages' declared inputs, so the runner
            # would find them unchanged since the daily run
            "scoring with the model": run_pipeline(settings.with_overrides(skip_unchanged=False), days,
                                                   stages=scored)}
    for what, summary in runs.items():
        out(f"{what}: {first}..{last}, {summary.seconds:.0f} s")
        for s in summary.stages:
            out(f"  stage {s.name:<24} {s.status:<9} {s.seconds:8.1f} s {s.error or ''}")
        for w in summary.warnings:
            if w.startswith("[cpi"):
                out(f"  ! {w}")
    comparison = compare_lake(settings)
    model = model_report(settings)
    print_report(comparison, model, out)
    out(f"evaluation took {time.perf_counter() - t0:.0f} s")
    return comparison, model


def main(argv: list[str] | None = None) -> int:
    from lakehouse.config import load_settings

    p = argparse.ArgumentParser(prog="python -m jobs.cpi.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", default="small", choices=("tiny", "small", "reference"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--home", help="MSP home to generate and run in (default: ./.msp/eval-<scale>-<seed>)")
    args = p.parse_args(argv)
    home = Path(args.home or f".msp/eval-{args.scale}-{args.seed}").resolve()
    settings = load_settings(env={**os.environ, "MSP_HOME": str(home)})
    comparison, _ = run_evaluation(settings, args.scale, args.seed)
    return 0 if comparison.exact else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
