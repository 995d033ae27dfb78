"""``msp dsa``: the DSA agent on the command line.

    msp dsa budget [--month 2025-11]                 # budget vs actual per department, forecast, alerts
    msp dsa anomalies [--days 90] [--all]            # alerted anomalies (AWS Anomaly records), root causes
    msp dsa anomalies --evaluate [--truth DIR]       # recall, precision, root cause, time to detection vs truth
    msp dsa forecast [--department hosting]          # monthly forecast with 80/95 % intervals
    msp dsa forecast --backtest                      # MAPE and coverage, model vs baseline
    msp dsa detect --csv FILE --time COL --value COL [--method model] [--out FILE]
    msp dsa evaluate --truth DIR [--methods model baseline statsforecast]   # vs planted truth
    msp dsa plot ANOMALY_ID --out docs/img/dsa-anomaly.png

Reads the published tables only; ``detect --csv`` runs the detector on any univariate series (a score in
[0, 1] and a flag per row), so it can be judged on public benchmarks.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings


def _read(settings: Settings, name: str, where=None) -> pd.DataFrame:
    import schemas
    from lakehouse.lake import Lake

    return Lake.from_settings(settings).read_pandas(schemas.get(name), where)


def _cell(v: Any) -> str:
    import pandas as pd

    if v is None or (not isinstance(v, str | bool | list | dict) and pd.api.types.is_scalar(v) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def _table(title: str, frame: pd.DataFrame, columns: list[str] | None = None) -> None:
    from rich.table import Table

    from lakehouse.cli import console

    table = Table(title=title, title_justify="left")
    cols = columns or list(frame.columns)
    for c in cols:
        table.add_column(c, justify="left" if frame[c].dtype == object else "right")
    for r in frame[cols].itertuples(index=False):
        table.add_row(*[_cell(v) for v in r])
    console.print(table)


def latest_anomalies(snaps: pd.DataFrame) -> pd.DataFrame:
    """The current state of every anomaly: its row of the latest day."""
    if snaps.empty:
        return snaps
    return snaps.sort_values("dt").groupby("anomaly_id", sort=False).tail(1).reset_index(drop=True)


# ---- budget ----------------------------------------------------------------------------------------------
def cmd_budget(args, settings: Settings) -> int:
    from lakehouse.cli import err

    b = _read(settings, "analytics.spend_budget_monthly")
    if b.empty:
        err.print("[red]no budget report yet: run `msp run --agents dsa` first[/]")
        return 1
    month = args.month or b["month"].max()
    rows = b[b["month"] == month].sort_values("forecast_pct_of_budget", ascending=False, na_position="last")
    if rows.empty:
        err.print(f"[red]no budget rows for {month}; months: {', '.join(sorted(b['month'].unique())[-6:])}[/]")
        return 1
    _table(f"Budget vs actual, {month} (as of {rows['as_of'].max()})", rows,
           ["department", "budget", "actual", "actual_pct_of_budget", "forecast_month_end", "forecast_pct_of_budget",
            "variance", "variance_pct", "alert_actual_pct", "alert_forecast_pct", "status"])
    roi = _read(settings, "analytics.spend_roi", {"month": month})
    if not roi.empty:
        _table(f"ROI and payback of stated benefits, {settings.model('dsa').roi_months} months to {month}", roi,
               ["line", "months_paid", "cost", "monthly_benefit", "benefit", "roi_pct", "payback_months"])
    return 0


# ---- anomalies -------------------------------------------------------------------------------------------
def cmd_anomalies(args, settings: Settings) -> int:
    from datetime import timedelta

    from lakehouse.cli import console, err

    snaps = _read(settings, "analytics.spend_anomalies")
    if snaps.empty:
        err.print("[red]no anomalies scored yet: run `msp run --agents dsa` first[/]")
        return 1
    cur = latest_anomalies(snaps)
    if args.evaluate:
        return _evaluate(cur, Path(args.truth or settings.truth_root), args.tolerance)
    last = max(snaps["dt"])
    if not args.all:
        since = date.fromisoformat(last) - timedelta(days=args.days)
        cur = cur[cur["alerted"] & (cur["start_date"] >= since)]
    cur = cur.sort_values("total_impact", ascending=False)
    _table(f"Spend anomalies{'' if args.all else ' alerted'} (last day scored {last})", cur.head(args.limit),
           ["start_date", "end_date", "source", "dimension", "segment", "kind", "actual_spend", "expected_spend",
            "total_impact", "impact_pct", "severity", "max_score", "top_root_cause"])
    if args.anomaly:
        import json

        one = cur[cur["anomaly_id"].str.startswith(args.anomaly)]
        for r in one.to_dict("records"):
            console.print(f"[bold]{r['anomaly_id']}[/] root causes:")
            for rc in json.loads(r["root_causes"]):
                console.print(f"  {rc}")
    return 0


def _evaluate(records: pd.DataFrame, truth_dir: Path, tolerance: int) -> int:
    import pandas as pd

    from lakehouse.cli import console, err
    from models.dsa.evaluate import evaluate

    path = truth_dir / "spend_anomalies.csv"
    if not path.is_file():
        err.print(f"[red]no planted truth at {path} (--truth DIR)[/]")
        return 1
    truth = pd.read_csv(path)
    last = max(records["last_detected"]) if len(records) else None
    truth = truth[pd.to_datetime(truth["start_date"]).dt.date <= last] if last else truth
    import json

    recs = records.copy()
    recs["root_causes"] = [json.loads(x) if isinstance(x, str) else x for x in recs["root_causes"]]
    res = evaluate(recs, truth, tolerance)
    _table("Planted anomalies", res["per_anomaly"],
           ["anomaly_id", "kind", "vendor_or_service", "start_date", "found", "segment", "detected_start",
            "days_to_detect", "root_cause_correct"])
    console.print({k: v for k, v in res.items() if k not in ("per_anomaly", "false_alerts")})
    if len(res["false_alerts"]):
        _table("Alerts matching no planted anomaly", res["false_alerts"],
               ["start_date", "source", "dimension", "segment", "kind", "rule", "total_impact", "top_root_cause"])
    return 0


# ---- forecast --------------------------------------------------------------------------------------------
def cmd_forecast(args, settings: Settings) -> int:
    from lakehouse.cli import err
    from models.dsa.forecast import summary

    cfg = settings.model("dsa")
    if args.backtest:
        bt = _read(settings, "analytics.spend_forecast_backtest")
        if bt.empty:
            err.print("[red]no backtest yet: run `msp run --agents dsa` past a month end[/]")
            return 1
        bt = bt[bt["run_origin"] == bt["run_origin"].max()]
        if args.department:
            bt = bt[bt["department"] == args.department]
        s = summary(bt, list(cfg.forecast_levels))
        s["horizon"] = s["horizon"].map(lambda h: "all" if h == 0 else str(h))
        _table(f"Rolling-origin backtest ({bt['origin'].nunique()} origins to {bt['origin'].max()}; target MAPE "
               f"<= {cfg.forecast_target_mape_pct:g} %)", s)
        return 0
    fc = _read(settings, "analytics.spend_forecast")
    if fc.empty:
        err.print("[red]no forecast yet: run `msp run --agents dsa` past a month end[/]")
        return 1
    fc = fc[(fc["origin"] == fc["origin"].max()) & (fc["method"] == args.method)]
    fc = fc[fc["department"] == (args.department or "all")].sort_values("month")
    _table(f"Spend forecast, {args.department or 'all departments'} ({args.method}, from {fc['origin'].max()})", fc,
           ["month", "mean", "lo_80", "hi_80", "lo_95", "hi_95", "budget", "over_budget"])
    return 0


# ---- detect on any series --------------------------------------------------------------------------------
def detect_series(frame: pd.DataFrame, time_col: str, value_col: str, method: str, cfg, season: int | None = None,
                  direction: str = "both", level: float | None = None) -> pd.DataFrame:
    """Score one univariate series (rows in time order): expected, lower, upper, score in [0, 1], flag.

    A daily series keeps the calendar (working days and weekends, weekly season); any other spacing is a
    sequence of observations with ``season`` (default 1 for the model, 24 for hourly data, 7 for daily).
    The log-normal model needs values >= 0: a series with negative values is scored by the baseline."""
    from dataclasses import replace

    import numpy as np
    import pandas as pd

    from models.dsa.detect import detect

    if time_col not in frame.columns or value_col not in frame.columns:
        raise LookupError(f"the CSV has no column {time_col!r} or {value_col!r}; columns: {', '.join(frame.columns)}")
    df = frame.copy()
    ts = pd.to_datetime(df[time_col], errors="coerce", utc=True)
    if ts.isna().all():
        raise LookupError(f"column {time_col!r} holds no dates or times")
    order = np.argsort(ts.to_numpy(), kind="stable")
    df = df.iloc[order].reset_index(drop=True)
    ts = ts.iloc[order].reset_index(drop=True)
    y = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=float)
    step = ts.diff().dropna().median() if len(ts) > 1 else pd.Timedelta(days=1)
    daily = step == pd.Timedelta(days=1)
    if season is None:
        season = 7 if daily else (24 if step == pd.Timedelta(hours=1) else 1)
    used = method
    if method == "model" and np.nanmin(y) < 0:
        used = "baseline"
    p = cfg.detector(used)
    p = replace(p, direction=direction, season=max(season, 1), weekparts=bool(daily), count_h=0.0,
                level=level or p.level, min_history=min(p.min_history, max(28, len(y) // 10)))
    if used == "baseline" and season == 1:
        p = replace(p, weeks=min(p.weeks, 8))
    first_weekday = int(ts.iloc[0].weekday()) if daily else 0
    sc = detect(y[None, :], np.arange(len(y)), p, first_weekday=first_weekday,
                first=np.asarray([int(np.argmax(np.isfinite(y) & (y != 0)))]))
    df["expected"] = sc.expected[0]
    df["lower"] = sc.lower[0]
    df["upper"] = sc.upper[0]
    df["score"] = np.nan_to_num(sc.score[0], nan=0.0).round(6)
    df["flag"] = sc.flag[0].astype(int)
    df.attrs["method"] = used
    return df


def cmd_detect(args, settings: Settings) -> int:
    import pandas as pd

    from lakehouse.cli import console, err

    try:
        frame = pd.read_csv(args.csv)
        out = detect_series(frame, args.time, args.value, args.method, settings.model("dsa"), args.season,
                            args.direction, args.level)
    except (OSError, LookupError, ValueError) as exc:
        err.print(f"[red]{exc}[/]")
        return 2
    if args.out:
        out.to_csv(args.out, index=False)
        console.print(f"{len(out)} rows scored ({out.attrs['method']}), {int(out['flag'].sum())} flagged -> {args.out}")
    else:
        sys.stdout.write(out.to_csv(index=False))
    return 0


# ---- evaluate --------------------------------------------------------------------------------------------
def cmd_evaluate(args, settings: Settings) -> int:
    from jobs.dsa.evaluation import evaluate_methods
    from lakehouse.cli import console, err

    try:
        summary, detail = evaluate_methods(settings, args.methods, Path(args.truth or settings.truth_root),
                                           args.tolerance)
    except (LookupError, OSError) as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    _table(f"Detectors vs the planted truth (start within {args.tolerance} days; *_7d: within 7)", summary)
    for m, r in detail.items():
        _table(f"{m}: planted anomalies", r["per_anomaly"],
               ["anomaly_id", "kind", "vendor_or_service", "start_date", "found", "segment", "detected_start",
                "alerted_on", "days_to_detect", "root_cause_correct"])
        if args.false_alerts and len(r["false_alerts"]):
            _table(f"{m}: alerts matching no planted anomaly", r["false_alerts"].head(args.false_alerts),
                   ["start_date", "source", "dimension", "segment", "kind", "rule", "total_impact", "top_root_cause"])
    if args.out:
        summary.to_csv(args.out, index=False)
        console.print(f"wrote {args.out}")
    return 0


# ---- plot ------------------------------------------------------------------------------------------------
def cmd_plot(args, settings: Settings) -> int:
    from jobs.dsa.plot import plot_anomaly
    from lakehouse.cli import console, err

    try:
        path = plot_anomaly(settings, args.anomaly, Path(args.out), args.days)
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    console.print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    dsa = sub.add_parser("dsa", help="departmental spend: budget vs actual, anomalies, forecast (the DSA agent)")
    cmds = dsa.add_subparsers(dest="dsa_command", required=True, metavar="DSA_COMMAND")
    p = cmds.add_parser("budget", help="budget vs actual per department for a month, forecast, alerts, ROI")
    p.add_argument("--month", help="yyyy-MM (default: the latest month)")
    p.set_defaults(func=cmd_budget)
    p = cmds.add_parser("anomalies", help="spend anomalies (AWS Anomaly records) with their root causes")
    p.add_argument("--days", type=int, default=90, help="alerted anomalies that started in the last N days")
    p.add_argument("--all", action="store_true", help="every anomaly recorded, alerted or not")
    p.add_argument("--limit", type=int, default=25)
    p.add_argument("--anomaly", help="an anomaly id (or its prefix): print its root causes")
    p.add_argument("--evaluate", action="store_true", help="compare with the planted truth (synthetic MSP)")
    p.add_argument("--truth", help="folder of spend_anomalies.csv (default: the profile's truth root)")
    p.add_argument("--tolerance", type=int, default=2, help="days between planted and detected start")
    p.set_defaults(func=cmd_anomalies)
    p = cmds.add_parser("forecast", help="monthly spend forecast with intervals, or its backtest")
    p.add_argument("--department", help="a department (default: all departments together)")
    p.add_argument("--method", default="model", choices=("model", "baseline"))
    p.add_argument("--backtest", action="store_true", help="MAPE and interval coverage, model vs baseline")
    p.set_defaults(func=cmd_forecast)
    p = cmds.add_parser("detect", help="score any univariate series of a CSV: a score in [0, 1] and a flag per row")
    p.add_argument("--csv", required=True, help="input CSV")
    p.add_argument("--time", required=True, help="time column")
    p.add_argument("--value", required=True, help="value column")
    p.add_argument("--method", default="model", choices=("model", "baseline", "statsforecast"))
    p.add_argument("--direction", default="both", choices=("up", "both"), help="flag rises only, or both ways")
    p.add_argument("--season", type=int, help="season length in rows (default: 7 daily, 24 hourly, 1 otherwise)")
    p.add_argument("--level", type=float, help="interval level in %% (default: dsa.level)")
    p.add_argument("--out", help="output CSV (default: stdout)")
    p.set_defaults(func=cmd_detect)
    p = cmds.add_parser("evaluate", help="detectors vs the planted truth of a synthetic MSP (nothing written)")
    p.add_argument("--methods", nargs="+", default=["model", "baseline"],
                   choices=("model", "baseline", "statsforecast"))
    p.add_argument("--truth", help="folder of spend_anomalies.csv (default: the profile's truth root)")
    p.add_argument("--tolerance", type=int, default=2, help="days between planted and detected start")
    p.add_argument("--false-alerts", type=int, default=10, help="list up to N false alerts per method")
    p.add_argument("--out", help="write the summary as CSV")
    p.set_defaults(func=cmd_evaluate)
    p = cmds.add_parser("plot", help="PNG of one anomaly: the segment's spend, expectation and interval")
    p.add_argument("anomaly", help="anomaly id (or its prefix)")
    p.add_argument("--out", default="dsa-anomaly.png")
    p.add_argument("--days", type=int, default=120, help="days shown around the anomaly")
    p.set_defaults(func=cmd_plot)
