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
  the alerts stage raises ``license.compliance.violation`` (renewal_with_idle_seats) on ``alert_on`` for terms of
  ``sli.renewal_alert_min_term_months`` months or more with seats to cut.
* **added_seats** / **added_window_closes**: seats bought mid-term whose own 168-hour window is still open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from jobs.sli import catalogue as catalogue_mod
from jobs.sli.common import add_months, days_table, materialize, next_renewal, next_renewal_expr, versions_as_of
from jobs.sli.position import ENTITLEMENTS, INSTALLS, POSITION, client_names
from lakehouse.lake import Range
from lakehouse.transforms import as_of

if TYPE_CHECKING:  # pragma: no cover
    import ibis

    from jobs.sli.catalogue import Catalogue
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

RENEWALS = "analytics.licence_renewals"
UTILISATION = "analytics.licence_utilisation"
CLIENTS = "processed.clients"


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
    purchase) at 00:00 UTC until ``hours`` later, the end excluded.

    >>> w = window(date(2024, 1, 24), date(2025, 1, 23), 12, datetime(2025, 1, 29, 23, tzinfo=UTC))
    >>> (w.next_renewal.isoformat(), w.open)   # 167 h after the renewal: still open
    ('2026-01-23', True)
    """
    today = now.astimezone(UTC).date()
    nxt = next_renewal(renewal_date, term_months, today)
    if renewal_date > today:
        last = start_date
    else:
        last = today if nxt == today else add_months(nxt, -max(int(term_months), 1))
    if nxt == today and midnight(nxt) <= now:  # renewing today: today's window is the current one
        last = nxt
        nxt = add_months(nxt, max(int(term_months), 1))
    opens = midnight(last)
    closes = opens + timedelta(hours=hours)
    return Window(nxt, opens, closes, opens <= now < closes, midnight(nxt) + timedelta(hours=hours))


def renewal_terms(entitlements: ibis.Table, days: ibis.Table, cfg: SliSettings,
                  now: datetime | None = None) -> ibis.Table:
    """Per day of ``days`` (``as_of``) and entitlement active that day: the next renewal, the current and
    the next 168-hour windows, whether the window is open at ``now`` (default: each day at 00:00 UTC) and
    the day an alert is due (``alert_on``)."""
    import ibis

    e = versions_as_of(entitlements, ["entitlement_id"], days)
    e = e.filter(e.status == "active")
    term = ibis.greatest(e.term_months.cast("int64"), 1)
    today = e.as_of
    nxt = next_renewal_expr(e.renewal_date, e.term_months, today)
    renew_today = nxt == today
    last = ibis.cases((e.renewal_date > today, e.start_date), (renew_today, today),
                      else_=(nxt - term.as_interval("M")).cast("date"))
    nxt = ibis.ifelse(renew_today, (nxt + term.as_interval("M")).cast("date"), nxt)
    hours = ibis.interval(hours=cfg.renewal_window_hours)
    opens = last.cast("timestamp")
    instant = (ibis.literal(now.astimezone(UTC).replace(tzinfo=None), type="timestamp") if now is not None
               else today.cast("timestamp"))
    e = e.mutate(next_renewal=nxt, window_opens=opens, window_closes=opens + hours,
                 next_window_closes=nxt.cast("timestamp") + hours,
                 alert_on=(nxt - ibis.interval(days=cfg.renewal_alert_days)).cast("date"))
    return materialize(e.mutate(window_open=(e.window_opens <= instant) & (instant < e.window_closes),
                                days_to_renewal=e.next_renewal.delta(e.as_of, unit="day").cast("int32")))


def added_windows(entitlements: ibis.Table, now: datetime, cfg: SliSettings) -> ibis.Table:
    """Seats bought mid-term (a version with more seats in the same term) whose own window is open at ``now``:
    ``entitlement_id``, ``added_seats``, ``added_window_closes``."""
    import ibis

    lit_now = ibis.literal(now.astimezone(UTC).replace(tzinfo=None), type="timestamp")
    hist = entitlements.filter(entitlements.dt.cast("date") <= now.astimezone(UTC).date())
    w = ibis.window(group_by=hist.entitlement_id, order_by=[hist.updated_at, hist.dt])
    hist = hist.mutate(_prev_seats=hist.seats.lag().over(w), _prev_start=hist.start_date.lag().over(w))
    adds = hist.filter((hist.seats > hist._prev_seats) & (hist.start_date == hist._prev_start))
    bought = adds.updated_at.cast("timestamp")
    adds = adds.mutate(_closes=bought + ibis.interval(hours=cfg.renewal_window_hours),
                       _added=(adds.seats - adds._prev_seats), _bought=bought)
    adds = adds.filter((adds._bought <= lit_now) & (adds._closes > lit_now))
    return adds.group_by("entitlement_id").agg(added_seats=adds._added.sum().cast("int32"),
                                               added_window_closes=adds._closes.max())


def latest_as_of(rows: ibis.Table, facts: ibis.Table, key: Sequence[str], date_col: str, cols: dict[str, str],
                 lookback_days: int = 62) -> ibis.Table:
    """``rows`` (with ``as_of`` and ``key``) plus ``cols`` of the latest ``facts`` row of the same key dated on
    or before ``as_of`` (and at most ``lookback_days`` before it)."""
    import ibis

    f = facts.select(*key, _fdate=facts[date_col], **{new: facts[old] for new, old in cols.items()})
    r = rows.mutate(_row=ibis.row_number())
    j = r.join(f, [*[r[k] == f[k] for k in key], f._fdate <= r.as_of,
                   f._fdate >= (r.as_of - ibis.interval(days=lookback_days)).cast("date")])
    j = j.select(r._row, f._fdate, *[f[c] for c in cols])
    w = ibis.window(group_by=j._row, order_by=ibis.desc(j._fdate))
    j = j.mutate(_rank=ibis.row_number().over(w))
    j = j.filter(j._rank == 0).drop("_rank", "_fdate")
    return materialize(r.left_join(j, "_row").select(r, *[j[c] for c in cols]).drop("_row"))


def seat_needs(terms: ibis.Table, position: ibis.Table, utilisation: ibis.Table, installs: ibis.Table,
               cat: Catalogue, cfg: SliSettings) -> ibis.Table:
    """Seats each entitlement still needs on its day and what cutting the rest saves (module docstring)."""
    import ibis
    import pyarrow as pa

    e = latest_as_of(terms, position, ["client_id", "sku_part_number"], "snapshot_date",
                     {"pos_assigned": "assigned", "position_snapshot": "snapshot_date"})
    e = latest_as_of(e, utilisation, ["client_id", "sku_part_number"], "report_date",
                     {"util_idle": "idle_seats", "activity_report": "report_date"})
    cov = ibis.memtable(cat.coverage_table())
    ins = installs.join(cov, "install_key")
    ins = ins.group_by(["snapshot_date", "client_id", "sku_part_number"]).agg(_devices=ins.installs.sum())
    e = latest_as_of(e, ins, ["client_id", "sku_part_number"], "snapshot_date", {"_devices": "_devices"})
    ms = ibis.memtable(pa.table({"sku_part_number": pa.array([p.sku for p in cat.product if p.vendor == "Microsoft"],
                                                              pa.string())}))
    e = e.left_join(ms, "sku_part_number").select(e, _ms=ms.sku_part_number.notnull())
    microsoft = e._ms.fill_null(False) | (e.vendor == "Microsoft")
    ms_need = ibis.greatest(e.pos_assigned.fill_null(0) - e.util_idle.fill_null(0), 0)
    known = ibis.ifelse(microsoft, e.pos_assigned.notnull(), e._devices.notnull())
    needed = ibis.ifelse(microsoft, ms_need, e._devices.fill_null(0)).cast("int64")
    e = e.mutate(needed_seats=ibis.ifelse(known, needed, ibis.null().cast("int64")),
                 assigned_seats=ibis.ifelse(microsoft, e.pos_assigned, e._devices).cast("int32"))
    grp = ibis.window(group_by=[e.as_of, e.client_id, e.sku_part_number], order_by=[e.next_renewal, e.entitlement_id],
                      rows=(None, -1))
    whole = ibis.window(group_by=[e.as_of, e.client_id, e.sku_part_number])
    e = e.mutate(_before=e.seats.cast("int64").sum().over(grp).fill_null(0),
                 _total_cut=ibis.greatest(e.seats.cast("int64").sum().over(whole) - e.needed_seats, 0))
    cut = ibis.greatest(ibis.least(e._total_cut - e._before, e.seats.cast("int64")), 0)
    e = e.mutate(cuttable_seats=ibis.ifelse(e.needed_seats.isnull(), ibis.null().cast("int64"), cut).cast("int32"))
    price_c = (e.unit_price.cast("decimal(14,2)") * 100).round(0).cast("int64")
    premium = cfg.monthly_term_premium_pct / 100.0
    annual_c = ibis.ifelse(e.term_months < 12, (price_c.cast("float64") / (1 + premium)).round(0).cast("int64"),
                           price_c)
    cut_c = e.cuttable_seats.cast("int64") * price_c
    stable = ibis.greatest(e.seats.cast("int64") - e.cuttable_seats.fill_null(0).cast("int64"), 0)

    def money(c):
        return (c.cast("decimal(18,0)") / 100).cast("decimal(14,2)")

    return e.mutate(idle_seats=e.util_idle.cast("int32"), needed_seats=e.needed_seats.cast("int32"),
                    cut_saving_monthly=money(cut_c), cut_saving_term=money(cut_c * e.term_months.cast("int64")),
                    annual_unit_price=money(annual_c), monthly_term_premium=money(price_c - annual_c),
                    term_switch_saving_monthly=money(stable * (price_c - annual_c)))


PLAN_COLUMNS = ("as_of", "client_id", "client_name", "entitlement_id", "vendor", "sku_part_number", "sku_name",
                "billing_model", "term_months", "billing_frequency", "auto_renew", "seats", "unit_price",
                "term_start", "renewal_date", "next_renewal", "days_to_renewal", "window_opens", "window_closes",
                "window_open", "next_window_closes", "added_seats", "added_window_closes", "assigned_seats",
                "idle_seats", "needed_seats", "cuttable_seats", "cut_saving_monthly", "cut_saving_term",
                "annual_unit_price", "monthly_term_premium", "term_switch_saving_monthly", "alert", "alert_on",
                "position_snapshot", "activity_report", "dt")


def renewals(entitlements: ibis.Table, position: ibis.Table, utilisation: ibis.Table, installs: ibis.Table,
             clients: ibis.Table, now: datetime, cat: Catalogue, cfg: SliSettings) -> ibis.Table:
    """The renewal plan at ``now``: one row per active entitlement (see the module docstring)."""
    import ibis

    day = now.astimezone(UTC).date()
    terms = renewal_terms(entitlements, ibis.memtable(days_table([day.isoformat()])), cfg, now)
    e = seat_needs(terms, position, utilisation, installs, cat, cfg)
    adds = added_windows(entitlements, now, cfg)
    e = e.left_join(adds, "entitlement_id").select(e, adds.added_seats, adds.added_window_closes)
    names = client_names(clients)
    e = e.left_join(names, "client_id").select(e, names.client_name)
    e = e.mutate(term_start=e.start_date, added_seats=e.added_seats.fill_null(0),
                 alert=e.days_to_renewal <= cfg.renewal_alert_days, dt=e.as_of.cast("string"))
    return e.select(*PLAN_COLUMNS)


def renewal_alerts(entitlements: ibis.Table, position: ibis.Table, utilisation: ibis.Table, installs: ibis.Table,
                   days: Sequence[str], cat: Catalogue, cfg: SliSettings) -> ibis.Table:
    """Renewals whose alert falls on one of ``days``, with seats to cut: an entitlement's renewal alerts on
    the first day it is known to renew within ``sli.renewal_alert_days`` days (``alert_on``, or later when the
    term was exported late), once per (entitlement, renewal), for terms of ``renewal_alert_min_term_months``."""
    import ibis

    lo = date.fromisoformat(min(days)) - timedelta(days=cfg.renewal_alert_days + 1)
    span = [(lo + timedelta(days=i)).isoformat() for i in range((date.fromisoformat(max(days)) - lo).days + 1)]
    terms = renewal_terms(entitlements, ibis.memtable(days_table(span)), cfg)
    t = terms.filter((terms.term_months >= cfg.renewal_alert_min_term_months) & (terms.as_of >= terms.alert_on)
                     & (terms.as_of <= terms.next_renewal))
    w = ibis.window(group_by=[t.entitlement_id, t.next_renewal], order_by=t.as_of)
    t = t.mutate(_first=ibis.row_number().over(w))
    wanted = [date.fromisoformat(d) for d in days]
    t = t.filter((t._first == 0) & t.as_of.isin(wanted)).drop("_first")
    t = seat_needs(t, position, utilisation, installs, cat, cfg)
    return t.filter(t.cuttable_seats > 0)


def plan_inputs(ctx: RunContext, first: date, last: date, lookback_days: int = 62):
    """Position, utilisation and install rows from ``lookback_days`` before ``first`` to ``last`` (snapshots
    are weekly and reports monthly, so the latest of each on any day in between is among them)."""
    where = {"dt": Range((first - timedelta(days=lookback_days)).isoformat(), last.isoformat())}
    return ctx.table(POSITION, where), ctx.table(UTILISATION, where), ctx.table(INSTALLS, where)


def run(ctx: RunContext) -> None:
    """The renewal plan of every active entitlement as of the run's last day."""
    cfg: SliSettings = ctx.config
    cat = catalogue_mod.load(cfg.catalogue)
    day = ctx.end
    pos, util, ins = plan_inputs(ctx, day, day)
    out = renewals(ctx.table(ENTITLEMENTS, as_of(day)), pos, util, ins, ctx.table(CLIENTS, as_of(day)),
                   midnight(day), cat, cfg)
    ctx.write(RENEWALS, out, replace=[{"dt": day.isoformat()}])
