"""``msp spo``: the SPO agent on the command line.

    msp spo leads [--top N] [--day D]            # the open leads to call first, as scored on the last (or a) day
    msp spo forecast [--day D]                    # bookings per month with the band, by method; the backtest
    msp spo proposal OPPORTUNITY_ID [--out FILE]  # the proposal as Markdown (stdout), or .md / .html / .pdf
    msp spo model                                 # lead-score versions, metrics and promotions
    msp spo evaluate                              # the lead scorer against the planted truth (synthetic MSP)

Reads the published tables only: fast enough to run any time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings


def _lake(settings: Settings):
    from lakehouse.lake import Lake

    return Lake.from_settings(settings)


def _read(settings: Settings, name: str, where=None) -> pd.DataFrame:
    import schemas

    return _lake(settings).read_pandas(schemas.get(name), where)


def _last_day(settings: Settings, name: str, day: str | None) -> str | None:
    import schemas

    days = _lake(settings).partition_values(schemas.get(name), "dt")
    if day is not None:
        days = [d for d in days if d <= day]
    return days[-1] if days else None


def _fmt(v: Any, kind: str = "") -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if kind == "money":
        return f"{float(v):,.2f}"
    if kind == "prob":
        return f"{float(v):.1%}"
    return str(v)


def leads_table(settings: Settings, top: int, day: str | None = None):
    """(title, columns, rows) of the top leads of a scored day; LookupError when nothing is scored."""
    last = _last_day(settings, "analytics.lead_scores", day)
    if last is None:
        raise LookupError("no lead scores yet: train the scorer (`msp run --stages spo.lead_train`) and run the day")
    scores = _read(settings, "analytics.lead_scores", {"dt": last}).sort_values("priority_rank").head(top)
    cols = ["rank", "lead", "company", "owner", "status", "age", "P(client in 90 d)", "baseline", "tier", "why"]
    rows = [[str(r["priority_rank"]), r["lead_id"], _fmt(r["company_name"]), _fmt(r["owner"]), _fmt(r["status"]),
             str(r["age_days"]), _fmt(r["probability"], "prob"), _fmt(r["baseline_probability"], "prob"),
             r["priority_tier"], _fmt(r["reasons"])] for r in scores.to_dict("records")]
    version = scores["model_version"].iloc[0] if len(scores) else "-"
    return f"Leads to call first, scored on {last} (model {version})", cols, rows


def forecast_tables(settings: Settings, day: str | None = None):
    """[(title, columns, rows)]: the forecast of a day, and the backtest summary when there is one."""
    last = _last_day(settings, "analytics.pipeline_forecast", day)
    if last is None:
        raise LookupError("no pipeline forecast yet: run the day (`msp run --agents spo`)")
    f = _read(settings, "analytics.pipeline_forecast", {"dt": last}).sort_values(["month", "method"])
    cols = ["month", "method", "expected MRR", "band MRR", "won MRR", "expected one-time", "band one-time",
            "open deals"]
    rows = [[r["month"], r["method"], _fmt(r["expected_mrr"], "money"),
             f"{_fmt(r['low_mrr'], 'money')} .. {_fmt(r['high_mrr'], 'money')}", _fmt(r["won_mrr"], "money"),
             _fmt(r["expected_one_time"], "money"),
             f"{_fmt(r['low_one_time'], 'money')} .. {_fmt(r['high_one_time'], 'money')}", str(r["open_deals"])]
            for r in f.to_dict("records")]
    out = [(f"Bookings forecast made on {last}", cols, rows)]
    bt = _read(settings, "analytics.pipeline_backtest")
    if len(bt):
        from models.spo.forecast import summarize

        for c in ("expected_mrr", "low_mrr", "high_mrr", "actual_mrr", "expected_one_time", "low_one_time",
                  "high_one_time", "actual_one_time"):
            bt[c] = bt[c].astype(float)
        s = summarize(bt)
        out.append((f"Backtest: {int(s['origins'].max())} monthly origins, trained {bt['trained_on'].max()}",
                    ["method", "MAPE MRR", "WAPE MRR", "band coverage MRR", "MAPE one-time", "band coverage one-time",
                     "months (no bookings)"],
                    [[r["method"], _fmt(r["mape_mrr"], "prob"), _fmt(r["wape_mrr"], "prob"),
                      _fmt(r["coverage_mrr"], "prob"), _fmt(r["mape_one_time"], "prob"),
                      _fmt(r["coverage_one_time"], "prob"), f"{r['months']} ({r['zero_months']})"]
                     for r in s.to_dict("records")]))
    return out


def find_proposal(settings: Settings, opportunity_id: str) -> tuple[dict, list[dict]]:
    """The latest proposal of an opportunity and its lines; LookupError with what exists otherwise."""
    from jobs.spo.proposal import proposal_id

    pid = proposal_id(opportunity_id)
    proposals = _read(settings, "analytics.proposals")
    mine = proposals[proposals["proposal_id"] == pid].sort_values("dt")
    if mine.empty:
        sample = ", ".join(proposals.sort_values("dt")["opportunity_id"].tail(5)) or "none yet"
        raise LookupError(f"no proposal for {opportunity_id}: it is not a qualified deal (qualified, assessment, "
                          f"proposed or verbal) or a generated renewal / T&M / whitespace opportunity, or "
                          f"spo.proposals has not run since. Latest proposals: {sample}")
    record = mine.iloc[-1].to_dict()
    lines = _read(settings, "analytics.proposal_lines", {"dt": record["dt"]})
    lines = lines[lines["proposal_id"] == pid].sort_values("line_no").to_dict("records")
    return record, lines


def _print_tables(tables) -> None:
    from rich.table import Table

    from lakehouse.cli import console

    for title, cols, rows in tables:
        t = Table(title=title, title_justify="left")
        for c in cols:
            t.add_column(c, overflow="fold")
        for r in rows:
            t.add_row(*r)
        console.print(t)


def cmd_leads(args, settings: Settings) -> int:
    from lakehouse.cli import err

    try:
        _print_tables([leads_table(settings, args.top, args.day)])
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    return 0


def cmd_forecast(args, settings: Settings) -> int:
    from lakehouse.cli import err

    try:
        _print_tables(forecast_tables(settings, args.day))
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    return 0


def cmd_proposal(args, settings: Settings) -> int:
    from jobs.spo.proposal import render, render_pdf
    from lakehouse.cli import console, err

    try:
        record, lines = find_proposal(settings, args.opportunity_id)
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    cfg = settings.model("spo")
    if args.out is None:
        print(render(record, lines, cfg, "md"), end="")
        return 0
    out = Path(args.out)
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in ("md", "html", "pdf"):
        err.print(f"[red]--out {out}: the file name must end in .md, .html or .pdf[/]")
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == "pdf":
        out.write_bytes(render_pdf(record, lines, cfg))
    else:
        out.write_text(render(record, lines, cfg, suffix), encoding="utf-8")
    console.print(f"{record['proposal_id']} ({record['proposal_kind']}, {len(lines)} line(s), monthly "
                  f"{float(record['monthly_total']):,.2f}, one-time {float(record['one_time_total']):,.2f}) -> {out}")
    return 0


def cmd_model(args, settings: Settings) -> int:
    from rich.table import Table

    from lakehouse.cli import console
    from lakehouse.model_registry import ModelRegistry
    from models.spo.leads import MODEL_NAME

    registry = ModelRegistry(_lake(settings), MODEL_NAME)
    cur = registry.current()
    t = Table(title=f"{MODEL_NAME} versions (current: {cur.version if cur else 'none'})", title_justify="left")
    for c in ("version", "rows", "ROC-AUC", "PR-AUC", "Brier", "ECE", "lift@10%", "baseline PR-AUC", "baseline ECE"):
        t.add_column(c)
    for v in registry.versions():
        mv = registry.get(v)
        m, b = mv.metrics, mv.metrics.get("baseline", {})
        t.add_row(("* " if cur and cur.version == v else "") + v, str(mv.training_rows),
                  *[_fmt(None if m.get(k) is None else round(m[k], 4)) for k in ("roc_auc", "pr_auc", "brier", "ece",
                                                                                 "lift_top_decile")],
                  _fmt(None if b.get("pr_auc") is None else round(b["pr_auc"], 4)),
                  _fmt(None if b.get("ece") is None else round(b["ece"], 4)))
    console.print(t)
    for d in registry.history()[-3:]:
        console.print(f"{d['decided_at']} {d['version']}: {'promoted' if d['promoted'] else 'not promoted'} "
                      f"({d['reason']})")
    return 0


def cmd_evaluate(args, settings: Settings) -> int:
    from jobs.spo.evaluate import lead_truth_report
    from lakehouse.cli import console, err

    try:
        lines = lead_truth_report(settings)
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    for line in lines:
        console.print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    spo = sub.add_parser("spo", help="lead scores, pipeline forecast, proposals (the SPO agent)")
    cmds = spo.add_subparsers(dest="spo_command", required=True, metavar="SPO_COMMAND")
    p = cmds.add_parser("leads", help="the open leads to call first, by their probability of becoming a client")
    p.add_argument("--top", type=int, default=10, help="how many leads (default 10)")
    p.add_argument("--day", help="scored day yyyy-mm-dd (default: the last scored day)")
    p.set_defaults(func=cmd_leads)
    p = cmds.add_parser("forecast", help="expected bookings per month with the band, by method, and the backtest")
    p.add_argument("--day", help="forecast day yyyy-mm-dd (default: the last one)")
    p.set_defaults(func=cmd_forecast)
    p = cmds.add_parser("proposal", help="render the proposal of an opportunity (OP-... or SO-...)")
    p.add_argument("opportunity_id", metavar="OPPORTUNITY_ID")
    p.add_argument("--out", help="write to this file (.md, .html or .pdf) instead of printing Markdown")
    p.set_defaults(func=cmd_proposal)
    p = cmds.add_parser("model", help="lead-score model versions, metrics and promotions")
    p.set_defaults(func=cmd_model)
    p = cmds.add_parser("evaluate", help="the current lead scorer against the synthetic MSP's planted truth")
    p.set_defaults(func=cmd_evaluate)
