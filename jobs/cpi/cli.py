"""``msp cpi``: the CPI agent on the command line.

    msp cpi report                       # every client, last closed month: margin, tier, churn risk
    msp cpi report --client CL-00042     # one client, month by month, with its churn risk and latest note
    msp cpi report --month 2024-03       # every client in that month
    msp cpi model                        # the churn model versions, their metrics, the current one
    msp cpi evaluate --scale small       # profitability vs planted truth, model vs baseline

Reads the published tables only (no engine, no Spark): fast enough to run any time.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings


def _fmt(v: Any, kind: str = "") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if kind == "money":
        return f"{float(v):,.2f}"
    if kind == "pct":
        return f"{float(v):.1f}%"
    if kind == "prob":
        return f"{float(v):.0%}" if float(v) >= 0.005 else "<1%"
    if kind == "ratio":
        return f"{float(v):.2f}"
    return str(v)


def _lake(settings: Settings):
    from lakehouse.lake import Lake

    return Lake.from_settings(settings)


def _read(settings: Settings, name: str, where=None) -> pd.DataFrame:
    import schemas

    return _lake(settings).read_pandas(schemas.get(name), where)


def latest_churn(settings: Settings, on: date | None = None) -> pd.DataFrame:
    """The newest churn scores (of the last scored day, or of the last day on or before ``on``)."""
    import schemas

    ds = schemas.get("analytics.churn")
    days = _lake(settings).partition_values(ds, "dt")
    if on is not None:
        days = [d for d in days if d <= on.isoformat()]
    return _read(settings, ds.qualified_name, {"dt": days[-1]}) if days else ds.arrow_schema().empty_table().to_pandas()


def report_tables(settings: Settings, client: str | None, month: str | None):
    """(title, columns, rows, footer lines) of the report; raises LookupError with a clear message."""
    from lakehouse.transforms import month_end

    report = _read(settings, "analytics.client_margin_report")
    if report.empty:
        raise LookupError("no margin report published yet: run `msp run --agents cpi` first")
    final = report[report["month_final"]]
    asked = month
    month = month or (final["month"].max() if not final.empty else report["month"].max())
    churn = latest_churn(settings, None if client else month_end(month))
    risk = {r["client_id"]: r for r in churn.to_dict("records")}
    if client is None:
        rows = report[report["month"] == month].sort_values(["margin_pct", "client_id"], na_position="last")
        if rows.empty:
            raise LookupError(f"no margin report rows for {month}; months published: "
                              f"{', '.join(sorted(report['month'].unique())[-6:])}")
        cols = ["client", "name", "billed", "profit", "margin", "tier", "change", "problem", "EHR", "RHEM",
                "days late", "churn risk", "band"]
        out = []
        for r in rows.to_dict("records"):
            c = risk.get(r["client_id"], {})
            out.append([r["client_id"], _fmt(r["client_name"]), _fmt(r["billed"], "money"), _fmt(r["profit"], "money"),
                        _fmt(r["margin_pct"], "pct"), _fmt(r["margin_tier"]), _fmt(r["tier_change"]),
                        "yes" if r["problem_client"] else "", _fmt(r["effective_hourly_rate"], "money"),
                        _fmt(r["rhem"], "ratio"), _fmt(r["avg_days_late"], "ratio"),
                        _fmt(c.get("churn_probability"), "prob"), _fmt(c.get("risk_band"))])
        footer = [f"{int(rows['problem_client'].sum())} problem client(s); churn scored on "
                  f"{churn['dt'].max() if not churn.empty else 'never'}"]
        return f"Client profitability, {month}{'' if month in set(final['month']) else ' (month not closed)'}", \
            cols, out, footer
    mine = report[report["client_id"] == client].sort_values("month")
    if mine.empty:
        raise LookupError(f"client {client!r} is not in the margin report")
    if asked:
        mine = mine[mine["month"] == asked]
        if mine.empty:
            raise LookupError(f"client {client!r} has no margin report row for {asked}")
    profit = _read(settings, "processed.client_profitability_monthly")
    profit = {r["month"]: r for r in profit[profit["client_id"] == client].to_dict("records")}
    cols = ["month", "billed", "additions", "labour h", "labour cost", "profit", "margin", "tier", "EHR", "RHEM",
            "tickets", "days late", "CSAT", "final"]
    out = []
    for r in mine.tail(12).to_dict("records"):
        p = profit.get(r["month"], {})
        out.append([r["month"], _fmt(r["billed"], "money"), _fmt(r["addition_cost"], "money"),
                    _fmt(r["labour_hours"], "ratio"), _fmt(r["labour_cost"], "money"), _fmt(r["profit"], "money"),
                    _fmt(r["margin_pct"], "pct"), _fmt(r["margin_tier"]), _fmt(r["effective_hourly_rate"], "money"),
                    _fmt(r["rhem"], "ratio"), _fmt(r["tickets"]), _fmt(r["avg_days_late"], "ratio"),
                    _fmt(p.get("csat_avg"), "ratio"), "yes" if r["month_final"] else "no"])
    footer = []
    last = mine.iloc[-1]
    if last.get("suggested_action"):
        footer.append(f"Suggested action ({last['month']}): {last['suggested_action']}")
    c = risk.get(client)
    if c:
        footer.append(f"Churn risk on {c['dt']}: {_fmt(c['churn_probability'], 'prob')} ({c['risk_band']}), "
                      f"rules baseline {_fmt(c['baseline_probability'], 'prob')}; model {c['model_version']}")
        if c.get("signals"):
            footer.append(f"Signals: {c['signals']}")
    else:
        footer.append("Churn risk: not scored (no churn model yet, or the client is no longer served)")
    notes = _read(settings, "analytics.client_insights")
    notes = notes[notes["client_id"] == client].sort_values("dt")
    if not notes.empty:
        footer.append(f"Insight ({notes.iloc[-1]['dt']}): {notes.iloc[-1]['insight']}")
    return f"{client} {last.get('client_name') or ''}: profitability by month", cols, out, footer


def cmd_report(args, settings: Settings) -> int:
    from rich.table import Table

    from lakehouse.cli import console, err

    try:
        title, cols, rows, footer = report_tables(settings, args.client, args.month)
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    table = Table(title=title, title_justify="left")
    for c in cols:
        left = c in ("client", "name", "tier", "month", "band", "change")
        table.add_column(c, justify="left" if left else "right", no_wrap=c != "name",
                         max_width=22 if c == "name" else None)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    for line in footer:
        console.print(line)
    return 0


def cmd_model(args, settings: Settings) -> int:
    from rich.table import Table

    from lakehouse.cli import console
    from lakehouse.model_registry import ModelRegistry
    from models.cpi.train import MODEL_NAME

    registry = ModelRegistry(_lake(settings), MODEL_NAME)
    cur = registry.current()
    table = Table(title=f"{MODEL_NAME} versions (current: {cur.version if cur else 'none'})", title_justify="left")
    for c in ("version", "created", "rows", "ROC-AUC", "PR-AUC", "lift@10%", "Brier", "ECE", "baseline PR-AUC"):
        table.add_column(c)
    for v in registry.versions():
        mv = registry.get(v)
        m, b = mv.metrics, mv.metrics.get("baseline", {})
        table.add_row(("* " if cur and cur.version == v else "") + v, mv.created_at, str(mv.training_rows),
                      *[_fmt(m.get(k), "ratio") for k in ("roc_auc", "pr_auc", "lift_top_decile", "brier")],
                      _fmt(m.get("ece"), "ratio"), _fmt(b.get("pr_auc"), "ratio"))
    console.print(table)
    for d in registry.history()[-3:]:
        console.print(f"{d['decided_at']} {d['version']}: {'promoted' if d['promoted'] else 'not promoted'} "
                      f"({d['reason']})")
    return 0


def cmd_evaluate(args, settings: Settings) -> int:
    import os
    from pathlib import Path

    from jobs.cpi.evaluate import run_evaluation
    from lakehouse.cli import console
    from lakehouse.config import load_settings

    home = Path(args.home or f".msp/eval-{args.scale}-{args.seed}").resolve()
    settings = load_settings(env={**os.environ, "MSP_HOME": str(home)})
    comparison, _ = run_evaluation(settings, args.scale, args.seed, out=console.print)
    return 0 if comparison.exact else 1


def register(sub: argparse._SubParsersAction) -> None:
    cpi = sub.add_parser("cpi", help="client profitability and churn risk (the CPI agent)")
    cmds = cpi.add_subparsers(dest="cpi_command", required=True, metavar="CPI_COMMAND")
    p = cmds.add_parser("report", help="a client's profitability and churn risk (or every client's, for a month)")
    p.add_argument("--client", help="client id, e.g. CL-00042 (default: every client)")
    p.add_argument("--month", help="yyyy-MM (default: the last closed month; with --client: the last 12 months)")
    p.set_defaults(func=cmd_report)
    p = cmds.add_parser("model", help="churn model versions, metrics and promotions")
    p.set_defaults(func=cmd_model)
    p = cmds.add_parser("evaluate", help="generate an MSP, run the agent, compare with the planted truth")
    p.add_argument("--scale", default="small", choices=("tiny", "small", "reference"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--home", help="where to generate and run (default: ./.msp/eval-<scale>-<seed>)")
    p.set_defaults(func=cmd_evaluate)
