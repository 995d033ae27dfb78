"""``msp ram``: the RAM agent on the command line.

    msp ram utilization [--month 2024-03 | --week 2024-W10] [--technician TC-0003]
    msp ram assign --date 2024-03-05 [--plan]       # the day's dispatch plan (--plan: compute it now, write nothing)
    msp ram routes --date 2024-03-05 [--map day.png] [--solver pyvrp|vroom]
    msp ram solve FILE [--time-limit 10] [--solver both] # Solomon or VRPLIB benchmark file: cost, routes, time
    msp ram replay --from 2024-01-01 --to 2025-12-31 [--export DIR] [--markdown FILE]

The first three read the published tables (``--plan`` computes from the processed tables); ``solve`` and
``replay`` are benchmarks and touch no table.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _read(settings: Settings, name: str, where=None) -> pd.DataFrame:
    import schemas
    from lakehouse.lake import Lake

    return Lake.from_settings(settings).read_pandas(schemas.get(name), where)


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


def _cell(v) -> str:
    import pandas as pd

    if v is None or (not isinstance(v, str | bool) and pd.api.types.is_scalar(v) and pd.isna(v)):
        return ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d %H:%M")
    return str(v)


def cmd_utilization(args, settings: Settings) -> int:
    from lakehouse.cli import console

    frame = _read(settings, "analytics.technician_utilization")
    if frame.empty:
        raise LookupError("no utilization published yet: run `msp run --agents ram` first")
    grain = "week" if args.week else "month"
    rows = frame[frame["grain"] == grain]
    period = args.week or args.month
    if period is None:
        done = rows[rows["complete"]]
        period = (done if not done.empty else rows)["period"].max()
    if args.technician:
        rows = rows[rows["technician_id"] == args.technician].sort_values("period").tail(12)
        title = f"Utilization of {args.technician}, last {len(rows)} {grain}s"
    else:
        rows = rows[rows["period"] == period].sort_values("utilization_pct", ascending=False)
        title = f"Utilization, {grain} {period}"
    if rows.empty:
        raise LookupError(f"no {grain} rows for {period or args.technician}; periods published: "
                          f"{', '.join(sorted(frame[frame['grain'] == grain]['period'].unique())[-6:])}")
    _table(title, rows, ["technician_id", "period", "role", "available_hours", "billable_hours", "utilization_pct",
                         "realised_rate", "cost_rate", "l1_share_pct", "sla_adherence_pct", "complete"])
    console.print("utilization = billable / (scheduled − PTO − holidays); bands: "
                  f"{settings.model('ram').under_utilization_pct:g} – {settings.model('ram').over_utilization_pct:g} %")
    return 0


def _plan_now(settings: Settings, day: date):
    from jobs.ram import assignment as A
    from lakehouse.context import RunContext

    cfg = settings.model("ram")
    ctx = RunContext.create(settings, [day])
    try:
        inp = A.inputs_for(ctx, day, day, cfg)
        solved = A.plan_day(day, inp, cfg)
    finally:
        ctx.close()
    if solved is None:
        raise LookupError(f"nobody is at work on {day}: its tickets are dispatched on the next working day")
    import pandas as pd

    return pd.DataFrame(A.plan_rows(*solved))


def cmd_assign(args, settings: Settings) -> int:
    from lakehouse.cli import console

    if args.plan:
        rows = _plan_now(settings, args.date)
    else:
        rows = _read(settings, "analytics.ram_assignments", {"dt": args.date.isoformat()})
        if rows.empty:
            raise LookupError(f"no plan published for {args.date}: run `msp run --date {args.date} --agents ram`, "
                              "or add --plan to compute it now")
    rows = rows.sort_values(["planned_start", "ticket_id"], na_position="last")
    _table(f"Dispatch plan for {args.date} ({rows['solver_status'].iloc[0]})", rows,
           ["ticket_id", "priority", "required_skill", "required_skill_level", "onsite", "est_hours", "technician_id",
            "planned_end", "sla_gate", "baseline_technician_id", "baseline_sla_gate", "psa_technician_id"])
    for who, col in (("optimiser", "sla_gate"), ("baseline", "baseline_sla_gate")):
        counts = rows[col].value_counts().to_dict()
        console.print(f"{who:>9}: " + ", ".join(f"{k} {counts.get(k, 0)}" for k in
                                              ("ok", "watch", "escalate", "breach", "overdue", "unassigned"))
                      + (f"; cost {rows['objective' if who == 'optimiser' else 'baseline_objective'].iloc[0]:.1f}"))
    return 0


def cmd_routes(args, settings: Settings) -> int:
    from lakehouse.cli import console

    rows = _read(settings, "analytics.ram_routes", {"dt": args.date.isoformat()})
    if rows.empty:
        raise LookupError(f"no routes published for {args.date} (no onsite work planned, or the day has not run)")
    mine = rows[rows["solver"] == args.solver].sort_values(["route", "stop_seq"])
    _table(f"Routes for {args.date} ({args.solver})", mine,
           ["route", "stop_seq", "kind", "ticket_id", "arrival", "departure", "leg_km", "route_km"])
    for solver, g in rows.groupby("solver"):
        routes = g[g["kind"] == "start"]
        console.print(f"{solver}: {len(routes)} route(s), {routes['route_km'].sum():.1f} km, "
                      f"{(g['kind'] == 'unrouted').sum()} unrouted")
    if args.map:
        from jobs.ram.plot import route_map

        path = route_map(mine, args.map, title=f"Onsite routes {args.date} ({args.solver})")
        console.print(f"map written to {path}")
    return 0


def cmd_solve(args, settings: Settings) -> int:
    from jobs.ram import benchmark, vrp
    from lakehouse.cli import console

    cfg = settings.model("ram")
    inst = benchmark.read(args.file, args.format, args.round)
    solutions = []
    for solver in (("pyvrp", "vroom") if args.solver == "both" else (args.solver,)):
        t0 = time.perf_counter()
        if solver == "pyvrp":
            sol = vrp.solve_pyvrp(inst, args.time_limit, None, seed=args.seed if args.seed is not None else
                                  cfg.route_seed)
        else:
            sol = vrp.solve_vroom(inst, exploration=cfg.vroom_exploration, threads=1, time_limit_s=args.time_limit)
        sol.seconds = round(time.perf_counter() - t0, 3)
        solutions.append(sol)
    for line in benchmark.describe(inst, solutions):
        console.print(line, highlight=False)
    return 0 if all(not vrp.check(inst, s) and not s.unassigned for s in solutions) else 1


def cmd_replay(args, settings: Settings) -> int:
    from jobs.ram import replay
    from lakehouse.cli import RichObserver, console

    cfg = settings.model("ram")
    frames = replay.read_export(args.export) if args.export else replay.read_lake(settings)
    with RichObserver() as obs:
        table, daily = replay.replay(frames, args.date_from, args.date_to, cfg, progress=obs.progress)
    _table(f"Replay {args.date_from} .. {args.date_to}", table)
    if args.markdown:
        from pathlib import Path

        Path(args.markdown).write_text(replay.markdown(table) + "\n", encoding="utf-8")
        console.print(f"table written to {args.markdown}")
    if args.daily:
        daily.to_csv(args.daily, index=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ram = sub.add_parser("ram", help="utilization, dispatch plans, onsite routes, route benchmarks (the RAM agent)")
    cmds = ram.add_subparsers(dest="ram_command", required=True, metavar="RAM_COMMAND")
    p = cmds.add_parser("utilization", help="utilization per technician (last complete month by default)")
    p.add_argument("--month", help="yyyy-MM")
    p.add_argument("--week", help="ISO week, yyyy-Www")
    p.add_argument("--technician", help="one technician, their last 12 periods")
    p.set_defaults(func=cmd_utilization)
    p = cmds.add_parser("assign", help="the day's dispatch plan: optimiser, baseline and what the PSA did")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--plan", action="store_true", help="compute the plan now from the processed tables")
    p.set_defaults(func=cmd_assign)
    p = cmds.add_parser("routes", help="the day's onsite routes")
    p.add_argument("--date", type=_date, required=True)
    p.add_argument("--solver", choices=("pyvrp", "vroom"), default="pyvrp")
    p.add_argument("--map", help="also draw the routes into this PNG file")
    p.set_defaults(func=cmd_routes)
    p = cmds.add_parser("solve", help="solve a Solomon or VRPLIB benchmark file; prints cost, routes and time")
    p.add_argument("file")
    p.add_argument("--time-limit", type=float, default=10.0, help="seconds per solver (default 10)")
    p.add_argument("--solver", choices=("pyvrp", "vroom", "both"), default="both")
    p.add_argument("--format", choices=("auto", "solomon", "vrplib"), default="auto")
    p.add_argument("--round", choices=("round", "trunc", "dimacs", "exact", "none"),
                   help="distance rounding (default: dimacs for Solomon, round for VRPLIB)")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_solve)
    p = cmds.add_parser("replay", help="replay the history: baseline vs optimiser vs the MSP (a benchmark)")
    p.add_argument("--from", dest="date_from", type=_date, required=True)
    p.add_argument("--to", dest="date_to", type=_date, required=True)
    p.add_argument("--export", help="read <DIR>/processed/<table>.parquet instead of the lake")
    p.add_argument("--markdown", help="write the table as Markdown to this file")
    p.add_argument("--daily", help="write the per-day rows as CSV to this file")
    p.set_defaults(func=cmd_replay)
