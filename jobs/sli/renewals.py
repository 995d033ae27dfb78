"""NCE renewal windows: for each entitlement, the next renewal, the 168-hour window in which seats can be cut,
how many seats can be cut then and what that saves, and the monthly-term premium over annual.

Microsoft's New Commerce Experience (CSP resale, DOMAIN.md s. 4 [R59][R60][R61]): seats can be reduced or the
subscription cancelled only within 7 days (168 h) of its purchase or renewal; afterwards the quantity is a
commitment for the whole term. Seats added mid-term get their own 168-hour window from the time they were
bought. A monthly term costs about 20 % more than an annual one (``sli.monthly_term_premium_pct``).

Per active entitlement, as of the run's last day at 00:00 UTC (``analytics.licence_renewals``):

* **next_renewal**: the entitlement's renewal date, rolled forward by whole terms when it has passed without
  a new term being exported; **window_opens** / **window_closes**: the window of the last renewal (or the
  purchase: the term's start) = [that day 00:00 UTC, + ``sli.renewal_window_hours``); **window_open** when
  the as-of instant lies in it; **next_window_closes** = next_renewal + the window.
* **needed_seats**: Microsoft SKUs: the tenant's assigned seats on the latest snapshot minus its idle seats on
  the latest activity report (:mod:`jobs.sli.savings`); other vendors: devices with a covered install on the
  latest snapshot ÷ ``installs_per_seat``, rounded up. **cuttable_seats** = seats − needed (≥ 0; with several
  entitlements of one SKU, the cut goes to the one renewing first); **cut_saving_monthly** = cuttable ×
  unit_price, **cut_saving_term** = × the term's months (what renewing the seats would commit).
* **annual_unit_price** = unit_price / (1 + premium) for a monthly term (else unit_price);
  **monthly_term_premium** = unit_price − annual_unit_price per seat; **term_switch_saving_monthly** = the
  needed seats × that premium (moving the stable base to annual, keeping a monthly buffer [R62]).
* **alert**: next_renewal within ``sli.renewal_alert_days`` days (``alert_on`` = next_renewal − that many days);
  the alerts stage raises ``license.compliance.violation`` (renewal_with_idle_seats) once per (entitlement,
  renewal) on the first day the renewal is known to be that close (``alert_on``, later when the term was
  exported late), for terms of ``sli.renewal_alert_min_term_months`` months or more with seats to cut.

The rules are evaluated per entitlement in Python (:func:`window`, :func:`plan`, :func:`alerts`: a few hundred
rows a day, and the same function answers the hour-level edge of the window in the tests); the rows they read,
the entitlements as they stood and the latest position, utilisation and install rows, are selected with Ibis.
* **added_seats** / **added_window_closes**: seats bought mid-term whose own 168-hour window is still open.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from jobs.sli import catalogue as catalogue_mod
from jobs.sli.common import add_months, next_renewal
from jobs.sli.position import ENTITLEMENTS, INSTALLS, POSITION, client_names
from lakehouse.lake import Range
from lakehouse.transforms import as_of

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from jobs.sli.catalogue import Catalogue
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

RENEWALS = "analytics.licence_renewals"
UTILISATION = "analytics.licence_utilisation"
CLIENTS = "processed.clients"
CENT = Decimal("0.01")
LOOKBACK_DAYS = 62  #: the latest snapshot (weekly) and report (monthly) of a day lie within this many days


@dataclass(frozen=True)
class Window:
    """When a subscription's seats can next be cut, as of an instant."""

    next_renewal: date
    opens: datetime  #: the current term's window: its start (purchase or last renewal) at 00:00 UTC
    closes: datetime
    open: bool
    next_closes: datetime


def midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


def window(start_date: date, renewal_date: date, term_months: int, now: datetime, hours: int = 168) -> Window:
    """The renewal window of one entitlement at ``now`` (UTC): reductions are allowed from a renewal (or the
    purchase: the term's start) at 00:00 UTC until ``hours`` later, the end excluded; the renewal date rolls
    forward by whole terms when it has passed without a new term being exported.

    >>> w = window(date(2024, 1, 24), date(2025, 1, 23), 12, datetime(2025, 1, 29, 23, tzinfo=UTC))
    >>> (w.next_renewal.isoformat(), w.open)   # 167 h after the renewal: still open
    ('2026-01-23', True)
    """
    now = now.astimezone(UTC)
    today = now.date()
    term = max(int(term_months), 1)
    nxt = next_renewal(renewal_date, term, today)
    if renewal_date > today:
        last = start_date
    elif nxt == today:  # renewing today: today's window is the current one
        last, nxt = today, add_months(today, term)
    else:
        last = add_months(nxt, -term)
    opens = midnight(last)
    closes = opens + timedelta(hours=hours)
    return Window(nxt, opens, closes, opens <= now < closes, midnight(nxt) + timedelta(hours=hours))


# ---- dated facts ------------------------------------------------------------------------------------------
@dataclass
class Facts:
    """Dated facts per (client, SKU): assigned seats (snapshots), idle seats (reports), devices with a covered
    install (snapshots); :meth:`at` finds the latest on or before a day, at most ``LOOKBACK_DAYS`` before it."""

    assigned: dict[tuple[str, str], list[tuple[date, int]]] = field(default_factory=dict)
    idle: dict[tuple[str, str], list[tuple[date, int]]] = field(default_factory=dict)
    devices: dict[tuple[str, str], list[tuple[date, int]]] = field(default_factory=dict)

    @staticmethod
    def _index(rows: Iterable[tuple[tuple[str, str], date, int]]) -> dict[tuple[str, str], list[tuple[date, int]]]:
        out: dict[tuple[str, str], dict[date, int]] = {}
        for key, d, v in rows:
            out.setdefault(key, {})[d] = out.get(key, {}).get(d, 0) + int(v or 0)
        return {k: sorted(v.items()) for k, v in out.items()}

    @classmethod
    def build(cls, position: Iterable[Mapping[str, Any]], utilisation: Iterable[Mapping[str, Any]],
              installs: Iterable[Mapping[str, Any]], cat: Catalogue) -> Facts:
        covers: dict[str, list[str]] = {}
        for p in cat.product:
            for k in p.installs:
                covers.setdefault(k, []).append(p.sku)
        dev = [((r["client_id"], sku), r["snapshot_date"], r["installs"]) for r in installs
               for sku in covers.get(r["install_key"], ())]
        return cls(cls._index(((r["client_id"], r["sku_part_number"]), r["snapshot_date"], r["assigned"])
                              for r in position),
                   cls._index(((r["client_id"], r["sku_part_number"]), r["report_date"], r["idle_seats"])
                              for r in utilisation),
                   cls._index(dev))

    @staticmethod
    def at(series: Mapping[tuple[str, str], list[tuple[date, int]]], key: tuple[str, str],
           day: date) -> tuple[date, int] | None:
        rows = series.get(key)
        if not rows:
            return None
        i = bisect.bisect_right(rows, (day, float("inf"))) - 1
        if i < 0 or (day - rows[i][0]).days > LOOKBACK_DAYS:
            return None
        return rows[i]


def needs(ent: Mapping[str, Any], day: date, facts: Facts, microsoft: bool) -> dict[str, Any]:
    """Seats an entitlement's client still needs of its SKU on ``day`` (see the module docstring)."""
    key = (ent["client_id"], ent["sku_part_number"])
    if microsoft:
        pos, idle = Facts.at(facts.assigned, key, day), Facts.at(facts.idle, key, day)
        assigned = pos[1] if pos else None
        idle_n = idle[1] if idle else None
        needed = None if assigned is None else max(assigned - (idle_n or 0), 0)
        return {"assigned_seats": assigned, "idle_seats": idle_n, "needed_seats": needed,
                "position_snapshot": pos[0] if pos else None, "activity_report": idle[0] if idle else None}
    dev = Facts.at(facts.devices, key, day)
    return {"assigned_seats": dev[1] if dev else None, "idle_seats": None, "needed_seats": dev[1] if dev else None,
            "position_snapshot": None, "activity_report": None}


def share_cuts(rows: list[dict[str, Any]]) -> None:
    """Set ``cuttable_seats`` on entitlements of one client, SKU and day: seats beyond those needed, taken from
    the entitlement renewing first."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["as_of"], r["client_id"], r["sku_part_number"]), []).append(r)
    for group in groups.values():
        needed = group[0]["needed_seats"]
        if needed is None:
            for r in group:
                r["cuttable_seats"] = None
            continue
        spare = max(sum(int(r["seats"]) for r in group) - needed, 0)
        for r in sorted(group, key=lambda r: (r["next_renewal"], r["entitlement_id"])):
            r["cuttable_seats"] = min(spare, int(r["seats"]))
            spare -= r["cuttable_seats"]


def money(ent: dict[str, Any], cfg: SliSettings) -> None:
    """The saving columns of a plan row (Decimal, to the cent)."""
    price = Decimal(str(ent["unit_price"])).quantize(CENT)
    premium = Decimal(str(cfg.monthly_term_premium_pct)) / 100
    annual = (price / (1 + premium)).quantize(CENT, ROUND_HALF_UP) if int(ent["term_months"]) < 12 else price
    cut = ent["cuttable_seats"]
    stable = max(int(ent["seats"]) - (cut or 0), 0)
    ent.update(cut_saving_monthly=None if cut is None else (cut * price).quantize(CENT),
               cut_saving_term=None if cut is None else (cut * price * int(ent["term_months"])).quantize(CENT),
               annual_unit_price=annual, monthly_term_premium=price - annual,
               term_switch_saving_monthly=(stable * (price - annual)).quantize(CENT))


def added_seats(history: Sequence[Mapping[str, Any]], now: datetime, hours: int) -> tuple[int, datetime | None]:
    """Seats bought mid-term (a version with more seats in the same term) whose own window is open at ``now``."""
    added, closes = 0, None
    rows = sorted(history, key=lambda r: (r["updated_at"], r["dt"]))
    for before, after in itertools.pairwise(rows):
        if after["start_date"] == before["start_date"] and int(after["seats"]) > int(before["seats"]):
            bought = after["updated_at"].astimezone(UTC)
            end = bought + timedelta(hours=hours)
            if bought <= now < end:
                added += int(after["seats"]) - int(before["seats"])
                closes = max(closes, end) if closes else end
    return added, closes


PLAN_COLUMNS = ("as_of", "client_id", "client_name", "entitlement_id", "vendor", "sku_part_number", "sku_name",
                "billing_model", "term_months", "billing_frequency", "auto_renew", "seats", "unit_price",
                "term_start", "renewal_date", "next_renewal", "days_to_renewal", "window_opens", "window_closes",
                "window_open", "next_window_closes", "added_seats", "added_window_closes", "assigned_seats",
                "idle_seats", "needed_seats", "cuttable_seats", "cut_saving_monthly", "cut_saving_term",
                "annual_unit_price", "monthly_term_premium", "term_switch_saving_monthly", "alert", "alert_on",
                "position_snapshot", "activity_report", "dt")


def _microsoft(cat: Catalogue) -> set[str]:
    return {p.sku for p in cat.product if p.vendor == "Microsoft"}


def plan(entitlements: Sequence[Mapping[str, Any]], history: Sequence[Mapping[str, Any]], facts: Facts, now: datetime,
         cat: Catalogue, cfg: SliSettings, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The renewal plan at ``now``: one row per entitlement of ``entitlements`` (its versions as they stood,
    active ones) with the columns of the module docstring; ``history`` holds every exported version (for seats
    bought mid-term)."""
    now = now.astimezone(UTC)
    day = now.date()
    ms = _microsoft(cat)
    by_ent: dict[str, list[Mapping[str, Any]]] = {}
    for h in history:
        by_ent.setdefault(h["entitlement_id"], []).append(h)
    rows = []
    for e in entitlements:
        if e["status"] != "active":
            continue
        w = window(e["start_date"], e["renewal_date"], e["term_months"], now, cfg.renewal_window_hours)
        added, added_closes = added_seats(by_ent.get(e["entitlement_id"], ()), now, cfg.renewal_window_hours)
        r = {"as_of": day, "client_id": e["client_id"], "client_name": (names or {}).get(e["client_id"]),
             "entitlement_id": e["entitlement_id"], "vendor": e["vendor"], "sku_part_number": e["sku_part_number"],
             "sku_name": e["sku_name"], "billing_model": e["billing_model"], "term_months": int(e["term_months"]),
             "billing_frequency": e["billing_frequency"], "auto_renew": e["auto_renew"], "seats": int(e["seats"]),
             "unit_price": e["unit_price"], "term_start": e["start_date"], "renewal_date": e["renewal_date"],
             "next_renewal": w.next_renewal, "days_to_renewal": (w.next_renewal - day).days,
             "window_opens": w.opens, "window_closes": w.closes, "window_open": w.open,
             "next_window_closes": w.next_closes, "added_seats": added, "added_window_closes": added_closes,
             "alert": (w.next_renewal - day).days <= cfg.renewal_alert_days,
             "alert_on": w.next_renewal - timedelta(days=cfg.renewal_alert_days), "dt": day.isoformat(),
             **needs(e, day, facts, e["sku_part_number"] in ms or e["vendor"] == "Microsoft")}
        rows.append(r)
    share_cuts(rows)
    for r in rows:
        money(r, cfg)
    return sorted(rows, key=lambda r: r["entitlement_id"])


def _valid_spans(history: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], date, date | None]]:
    """Each version of one entitlement and the days it stood: from its export day to the next version's."""
    latest_of_day: dict[str, Mapping[str, Any]] = {}
    for h in sorted(history, key=lambda r: (r["dt"], r["updated_at"])):
        latest_of_day[h["dt"]] = h
    days = sorted(latest_of_day)
    return [(latest_of_day[d], date.fromisoformat(d), date.fromisoformat(days[i + 1]) if i + 1 < len(days) else None)
            for i, d in enumerate(days)]


def alerts(history: Sequence[Mapping[str, Any]], facts: Facts, days: Sequence[str], cat: Catalogue,
           cfg: SliSettings, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Plan rows (as of their alert day) of the renewals whose alert falls on one of ``days`` with seats to cut.

    A renewal alerts on the first day it is known to be ``sli.renewal_alert_days`` days away or closer: the
    day its entitlement's next renewal, as exported then, is that close (once per entitlement and renewal,
    however many versions are exported meanwhile), for terms of ``sli.renewal_alert_min_term_months`` or more."""
    wanted = {date.fromisoformat(d) for d in days}
    if not wanted:
        return []
    last = max(wanted)
    by_ent: dict[str, list[Mapping[str, Any]]] = {}
    for h in history:
        if date.fromisoformat(h["dt"]) <= last:
            by_ent.setdefault(h["entitlement_id"], []).append(h)
    first_day: dict[tuple[str, date], tuple[date, Mapping[str, Any]]] = {}
    for ent, versions in by_ent.items():
        for v, lo, hi in _valid_spans(versions):
            if v["status"] != "active" or int(v["term_months"]) < cfg.renewal_alert_min_term_months:
                continue
            end = min(hi, last + timedelta(days=1)) if hi else last + timedelta(days=1)  # exclusive
            d = lo
            while d < end:  # walk the renewals this version stands for, not the days
                nxt = window(v["start_date"], v["renewal_date"], v["term_months"], midnight(d)).next_renewal
                alert = max(d, nxt - timedelta(days=cfg.renewal_alert_days))
                if alert < end and alert < nxt:
                    k = (ent, nxt)
                    if k not in first_day or alert < first_day[k][0]:
                        first_day[k] = (alert, v)
                d = max(nxt, d + timedelta(days=1))
    spans: dict[tuple[str, str], list[tuple[Mapping[str, Any], date, date | None]]] = {}
    for versions in by_ent.values():
        for sv, lo, hi in _valid_spans(versions):
            spans.setdefault((sv["client_id"], sv["sku_part_number"]), []).append((sv, lo, hi))
    out = []
    for (_ent, _nxt), (day, v) in sorted(first_day.items()):
        if day not in wanted:
            continue
        # every entitlement of the client's SKU as it stood that day shares the seats needed
        same = [sv for sv, lo, hi in spans[(v["client_id"], v["sku_part_number"])]
                if lo <= day and (hi is None or day < hi)]
        group = plan(same, (), facts, midnight(day), cat, cfg, names)
        out += [r for r in group if r["entitlement_id"] == v["entitlement_id"] and (r["cuttable_seats"] or 0) > 0]
    return out


# ---- the stage ---------------------------------------------------------------------------------------------
def read_facts(ctx: RunContext, first: date, last: date, cat: Catalogue) -> Facts:
    """Position, utilisation and install rows from ``LOOKBACK_DAYS`` before ``first`` to ``last``."""
    where = {"dt": Range((first - timedelta(days=LOOKBACK_DAYS)).isoformat(), last.isoformat())}
    pos = ctx.table(POSITION, where).select("client_id", "sku_part_number", "snapshot_date", "assigned")
    util = ctx.table(UTILISATION, where).select("client_id", "sku_part_number", "report_date", "idle_seats")
    ins = ctx.table(INSTALLS, where).select("client_id", "install_key", "snapshot_date", "installs")
    return Facts.build(pos.to_pyarrow().to_pylist(), util.to_pyarrow().to_pylist(), ins.to_pyarrow().to_pylist(), cat)


def entitlement_history(ctx: RunContext, last: date) -> list[dict[str, Any]]:
    cols = ("entitlement_id", "client_id", "vendor", "sku_id", "sku_part_number", "sku_name", "seats", "unit_price",
            "term_months", "billing_frequency", "billing_model", "start_date", "renewal_date", "auto_renew", "status",
            "updated_at", "dt")
    return ctx.table(ENTITLEMENTS, as_of(last)).select(*cols).to_pyarrow().to_pylist()


def client_name_map(ctx: RunContext, last: date) -> dict[str, str]:
    return {r["client_id"]: r["client_name"]
            for r in client_names(ctx.table(CLIENTS, as_of(last))).to_pyarrow().to_pylist()}


def standing(history: Sequence[Mapping[str, Any]], day: date) -> list[Mapping[str, Any]]:
    """Each entitlement's version as it stood on ``day``."""
    iso_day = day.isoformat()
    best: dict[str, Mapping[str, Any]] = {}
    for h in history:
        if h["dt"] > iso_day:
            continue
        cur = best.get(h["entitlement_id"])
        if cur is None or (h["dt"], h["updated_at"]) > (cur["dt"], cur["updated_at"]):
            best[h["entitlement_id"]] = h
    return list(best.values())


def to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    import pyarrow as pa

    import schemas

    schema = schemas.get(RENEWALS).arrow_schema()
    return pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in rows], schema=schema)


def run(ctx: RunContext) -> None:
    """The renewal plan of every active entitlement as of the run's last day."""
    cfg: SliSettings = ctx.config
    cat = catalogue_mod.load(cfg.catalogue)
    day = ctx.end
    history = entitlement_history(ctx, day)
    rows = plan(standing(history, day), history, read_facts(ctx, day, day, cat), midnight(day), cat, cfg,
                client_name_map(ctx, day))
    due, open_ = sum(r["alert"] for r in rows), sum(r["window_open"] for r in rows)
    ctx.count(RENEWALS).notes.append(f"{len(rows)} entitlement(s), {due} renewing within {cfg.renewal_alert_days} d, "
                                     f"{open_} window(s) open")
    ctx.write(RENEWALS, to_table(rows), replace=[{"dt": day.isoformat()}])
