"""``msp sli``: the SLI agent on the command line.

    msp sli compliance                   # tenant SKUs short of seats, billed wrongly or installed beyond licences
    msp sli compliance --client CL-00042 # one client: every SKU on the last snapshot, installs, open episodes
    msp sli savings                      # what the last activity report says can be reclaimed, per client
    msp sli savings --client CL-00042    # the findings one by one, with the reclaim plan
    msp sli renewals --within 30         # NCE renewals in the next 30 days (and open windows): seats to cut
    msp sli evaluate [--truth DIR]       # idle seats and shortfall episodes against the planted truth

The commands read the published tables through the SQL catalog (``msp sql``: DuckDB locally, Athena on
AWS), so what they print is what an analyst's query returns.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings

CLIENT = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def _fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return ""
    try:
        if v != v:  # NaN / NaT
            return ""
    except TypeError:
        pass
    if kind == "money":
        return f"{float(v):,.2f}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "pct":
        return f"{float(v):.0%}"
    if hasattr(v, "isoformat"):
        text = v.isoformat()
        return text[:16].replace("T", " ") if "T" in text else text[:10]
    return str(v)


def _query(settings: Settings, sql: str) -> pd.DataFrame:
    from lakehouse.environment import sql_catalog

    return sql_catalog(settings).query(sql)


def _client(value: str | None) -> str | None:
    if value is not None and not CLIENT.match(value):
        raise argparse.ArgumentTypeError(f"not a client id: {value!r}")
    return value


def _print(title: str, cols: list[tuple[str, str, str]], frame: pd.DataFrame, footer: list[str] = ()) -> None:
    """``cols``: (header, column, kind); kinds money / int / pct are right-aligned."""
    from rich.table import Table

    from lakehouse.cli import console

    table = Table(title=title, title_justify="left")
    for head, _, kind in cols:
        table.add_column(head, justify="right" if kind in ("money", "int", "pct") else "left",
                         no_wrap=kind != "text", max_width=40 if kind == "text" else None)
    for r in frame.to_dict("records"):
        table.add_row(*[_fmt(r.get(c), k) for _, c, k in cols])
    console.print(table)
    for line in footer:
        console.print(line)


# ---- compliance -------------------------------------------------------------------------------------------
def compliance_tables(settings: Settings, client: str | None) -> list[tuple[str, list, Any, list[str]]]:
    """(title, columns, frame, footer) of ``msp sli compliance``; raises LookupError when nothing is published."""
    last = _query(settings, "SELECT max(snapshot_date) AS d FROM processed.licence_position")["d"].iloc[0]
    if last is None or last != last:
        raise LookupError("no licence position published yet: run `msp run --agents sli` first")
    d = _fmt(last)
    cols = [("client", "client_id", ""), ("name", "client_name", "text"), ("SKU", "sku_part_number", ""),
            ("entitled", "entitled", "int"), ("assigned", "assigned", "int"), ("available", "available", "int"),
            ("short", "shortfall", "int"), ("true-up /mo", "true_up_exposure", "money"),
            ("since", "shortfall_episode_opened", ""), ("unassigned", "unassigned", "int"),
            ("PSA billed", "psa_quantity", "int"), ("drift", "billing_drift", "int"), ("price", "unit_price", "money")]
    if client is None:
        pos = _query(settings, f"""
            SELECT * FROM processed.licence_position WHERE snapshot_date = DATE '{d}'
            AND (shortfall > 0 OR drift_state IS NOT NULL AND drift_state <> 'closed')
            ORDER BY true_up_exposure DESC NULLS LAST, abs(billing_drift) DESC, client_id, sku_part_number""")
        short = pos[pos["shortfall"] > 0]
        footer = [f"{len(short)} tenant SKU(s) short of {int(short['shortfall'].sum()) if len(short) else 0} seat(s), "
                  f"true-up exposure {_fmt(short['true_up_exposure'].sum() if len(short) else 0, 'money')} USD/month; "
                  f"{int((pos['billing_drift'].fillna(0) != 0).sum())} with PSA billing drift"]
        out = [(f"Licence compliance on {d}: shortfalls and billing drift", cols, pos, footer)]
        inst = _query(settings, f"""
            SELECT * FROM processed.licence_installs WHERE snapshot_date = DATE '{d}' AND unlicensed_installs > 0
            AND install_state IS NOT NULL ORDER BY unlicensed_installs DESC, client_id""")
    else:
        pos = _query(settings, f"""
            SELECT * FROM processed.licence_position WHERE snapshot_date = DATE '{d}' AND client_id = '{client}'
            ORDER BY sku_part_number""")
        if pos.empty:
            raise LookupError(f"client {client!r} has no licence position on {d}")
        out = [(f"{client} {pos['client_name'].iloc[0] or ''}: licences on {d}", cols[2:], pos, [])]
        inst = _query(settings, f"""
            SELECT * FROM processed.licence_installs WHERE snapshot_date = DATE '{d}' AND client_id = '{client}'
            ORDER BY install_key""")
    icols = [("client", "client_id", ""), ("title", "install_name", "text"), ("devices", "installs", "int"),
             ("licences", "licence_skus", ""), ("seats", "licensed_seats", "int"),
             ("capacity", "install_capacity", "int"), ("unlicensed", "unlicensed_installs", "int"),
             ("since", "install_episode_opened", "")]
    if not inst.empty:
        out.append((f"Installs against licences on {d}", icols if client is None else icols[1:], inst, []))
    return out


def cmd_compliance(args, settings: Settings) -> int:
    return _show(lambda: compliance_tables(settings, args.client))


# ---- savings ------------------------------------------------------------------------------------------------
def savings_tables(settings: Settings, client: str | None) -> list[tuple[str, list, Any, list[str]]]:
    last = _query(settings, "SELECT max(report_date) AS d FROM analytics.licence_savings")["d"].iloc[0]
    if last is None or last != last:
        raise LookupError("no licence savings published yet: run `msp run --agents sli` first")
    d = _fmt(last)
    if client is None:
        frame = _query(settings, f"""
            SELECT client_id, any_value(client_name) AS client_name,
                   sum(seats) FILTER (WHERE finding = 'idle_seat') AS idle,
                   sum(seats) FILTER (WHERE finding = 'unassigned_seats') AS unassigned,
                   sum(seats) FILTER (WHERE finding = 'deleted_licensed') AS deleted,
                   sum(seats) FILTER (WHERE finding = 'double_licensed') AS double,
                   sum(seats) FILTER (WHERE finding = 'downgrade') AS downgrade,
                   sum(monthly_saving) AS monthly_saving, min(saving_from) AS first_saving
            FROM analytics.licence_savings WHERE report_date = DATE '{d}'
            GROUP BY client_id ORDER BY monthly_saving DESC, client_id""")
        cols = [("client", "client_id", ""), ("name", "client_name", "text"), ("idle", "idle", "int"),
                ("unassigned", "unassigned", "int"), ("deleted", "deleted", "int"), ("double", "double", "int"),
                ("downgrade", "downgrade", "int"), ("saving /mo", "monthly_saving", "money"),
                ("from", "first_saving", "")]
        total = frame["monthly_saving"].sum() if len(frame) else 0
        return [(f"Licence savings on the {d} activity report", cols, frame,
                 [f"{len(frame)} client(s); {_fmt(total, 'money')} USD/month, {_fmt(total * 12, 'money')} USD/year "
                  "at the entitlements' prices (`msp sli savings --client ID` for the reclaim plan)"])]
    frame = _query(settings, f"""
        SELECT * FROM analytics.licence_savings WHERE report_date = DATE '{d}' AND client_id = '{client}'
        ORDER BY finding, monthly_saving DESC, subject""")
    if frame.empty:
        raise LookupError(f"client {client!r} has no licence savings on the {d} report")
    cols = [("finding", "finding", ""), ("SKU", "sku_part_number", ""), ("user", "user_principal_name", "text"),
            ("seats", "seats", "int"), ("status", "status", ""), ("saving /mo", "monthly_saving", "money"),
            ("last active", "last_activity_date", ""), ("block sign-in", "block_sign_in_on", ""),
            ("remove licence", "remove_licence_on", ""), ("reduce seats", "reduce_seats_on", ""),
            ("blockers", "blockers", "text")]
    return [(f"{client} {frame['client_name'].iloc[0] or ''}: licence savings on the {d} report", cols, frame,
             [f"{_fmt(frame['monthly_saving'].sum(), 'money')} USD/month"])]


def cmd_savings(args, settings: Settings) -> int:
    return _show(lambda: savings_tables(settings, args.client))


# ---- renewals -----------------------------------------------------------------------------------------------
def renewal_tables(settings: Settings, within: int, client: str | None) -> list[tuple[str, list, Any, list[str]]]:
    last = _query(settings, "SELECT max(as_of) AS d FROM analytics.licence_renewals")["d"].iloc[0]
    if last is None or last != last:
        raise LookupError("no renewal plan published yet: run `msp run --agents sli` first")
    d = _fmt(last)
    where = f"AND client_id = '{client}'" if client else ""
    frame = _query(settings, f"""
        SELECT * FROM analytics.licence_renewals WHERE as_of = DATE '{d}' {where}
        AND (days_to_renewal <= {int(within)} OR window_open OR added_seats > 0)
        ORDER BY next_renewal, client_id, entitlement_id""")
    cols = [("client", "client_id", ""), ("name", "client_name", "text"), ("SKU", "sku_part_number", ""),
            ("term", "term_months", "int"), ("seats", "seats", "int"), ("needed", "needed_seats", "int"),
            ("cut", "cuttable_seats", "int"), ("saving /mo", "cut_saving_monthly", "money"),
            ("over term", "cut_saving_term", "money"), ("renews", "next_renewal", ""),
            ("window closes", "next_window_closes", ""), ("open now", "window_open", ""),
            ("monthly premium", "term_switch_saving_monthly", "money")]
    frame = frame.assign(window_open=frame["window_open"].map(lambda v: "yes" if v else ""))
    footer = [f"{len(frame)} entitlement(s) renew within {within} d or have a window open as of {d} 00:00 UTC; "
              f"{_fmt(frame['cut_saving_monthly'].fillna(0).sum(), 'money')} USD/month to cut, "
              f"{_fmt(frame['term_switch_saving_monthly'].fillna(0).sum(), 'money')} USD/month of monthly-term "
              "premium on seats in use",
              "Seats can be reduced only inside the 168-hour window after a renewal (NCE); after it they are "
              "committed for the whole term."]
    return [(f"NCE renewals within {within} days of {d}", cols, frame, footer)]


def cmd_renewals(args, settings: Settings) -> int:
    return _show(lambda: renewal_tables(settings, args.within, args.client))


# ---- evaluation ---------------------------------------------------------------------------------------------
def cmd_evaluate(args, settings: Settings) -> int:
    from jobs.sli.evaluate import evaluate_lake
    from lakehouse.cli import console, err

    try:
        ev = evaluate_lake(settings, args.truth)
    except FileNotFoundError as exc:
        err.print(f"[red]no planted truth at {args.truth or settings.truth_root}: {exc}[/]")
        return 1
    for line in ev.lines():
        console.print(line)
    return 0 if ev.shortfalls.exact and not ev.unexplained else 1


def _show(build) -> int:
    from lakehouse.cli import err

    try:
        tables = build()
    except LookupError as exc:
        err.print(f"[red]{exc}[/]")
        return 1
    for title, cols, frame, footer in tables:
        _print(title, cols, frame, footer)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sli = sub.add_parser("sli", help="licence compliance, savings and NCE renewals (the SLI agent)")
    cmds = sli.add_subparsers(dest="sli_command", required=True, metavar="SLI_COMMAND")
    p = cmds.add_parser("compliance", help="shortfalls, billing drift and unlicensed installs on the last snapshot")
    p.add_argument("--client", type=_client, help="client id, e.g. CL-00042 (default: every tenant with a problem)")
    p.set_defaults(func=cmd_compliance)
    p = cmds.add_parser("savings", help="idle, unassigned, deleted and double-licensed seats, downgrades: the saving")
    p.add_argument("--client", type=_client, help="client id: its findings and reclaim plan")
    p.set_defaults(func=cmd_savings)
    p = cmds.add_parser("renewals", help="NCE renewals coming up: their 168-hour windows and the seats to cut")
    p.add_argument("--within", type=int, default=30, help="days ahead (default 30)")
    p.add_argument("--client", type=_client, help="client id")
    p.set_defaults(func=cmd_renewals)
    p = cmds.add_parser("evaluate", help="idle seats and shortfall episodes against the planted truth")
    p.add_argument("--truth", help="truth folder (default: platform.truth_root)")
    p.set_defaults(func=cmd_evaluate)
