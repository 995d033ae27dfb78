"""Client snapshots for churn prediction: one row per client and snapshot day, features and label.

A snapshot on day *s* sees only what was known on *s*:

* monthly features come from the client's profitability months up to the last complete month (the month
  of *s* when *s* is its last day, else the month before), with trends against the 3 months before it:
  margin and its drop, effective hourly rate and its change, labour hours, ticket count and effort per
  ticket (DOMAIN.md section 1 churn signals: "EHR $134→$89, tickets +47 %" [R24]), RHEM, days late and
  their drift ("DSO 30→52 days"), CSAT and its drift, endpoint count change, MRR;
* RMM canaries over the 90 days up to *s* [R23]: agents removed (and those removed by end users or
  without a recorded reason, i.e. not by the MSP), unapproved remote-access tools installed;
* what the client is: type, industry, size, payment terms, billing cycle, tenure.

The **label** (DOMAIN.md section 1): the client ends its relationship within ``cpi.churn_horizon_days``
after *s*. The day it "ends" is its notice date (``cpi.churn_event = notice``: the day it cancels, the
moment an MSP must act before) or its service end date (``end``); a client with notice but no notice date
uses its end date. Both come from agreements (``processed.client_lifecycle``), never from the planted
truth. A snapshot is *eligible* when the client is served on *s* and has not yet ended; its label is
*complete* when *s* + horizon has passed on the run day (otherwise the outcome is still unknown and the
row is not used for training or testing).

The rules baseline flags are computed here too (:data:`RULES`), so the baseline and the model see the
same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Protocol

import numpy as np
import pandas as pd

from lakehouse.transforms import add_months, month_end, month_of


class ChurnRules(Protocol):
    """What the snapshots, rule flags and signals compare against: the CPI agent's settings
    (``jobs.cpi.settings.CpiSettings``) provide it; this package does not import them."""

    min_billed_for_margin: float
    ehr_target: float
    rhem_target: float
    days_late_grace: int
    ticket_surge_pct: float
    driver_min_change_pct: float
    csat_drop_points: float
    churn_event: str
    churn_horizon_days: int

    @property
    def lowest_bound(self) -> float: ...

    def tier(self, margin_pct: float | None) -> str | None: ...


KEYS = ["client_id", "snapshot_date"]
CATEGORICAL = ["client_type", "industry", "client_billing_cycle", "margin_tier"]
NUMERIC = [
    "tenure_months", "employee_count", "net_terms", "months_of_history",
    "margin_pct", "margin_delta_3m", "effective_hourly_rate", "ehr_change_pct_3m", "labour_hours",
    "labour_hours_change_pct_3m", "tickets", "tickets_change_pct_3m", "tickets_per_endpoint", "hours_per_ticket",
    "hours_per_ticket_change_pct_3m", "rhem", "avg_days_late", "days_late_delta_3m", "csat_3m", "csat_delta_3m",
    "endpoints", "endpoints_change_pct_3m", "mrr", "billed",
    "agent_removals_90d", "unplanned_removals_90d", "removals_per_endpoint_90d", "remote_tools_90d",
]
FEATURES = NUMERIC + CATEGORICAL
#: The named rules baseline (DOMAIN.md section 1 "Method"): flags a client shows on the snapshot day.
RULES = ["rule_margin_tier", "rule_ehr_below_target", "rule_rhem_above_target", "rule_days_late",
         "rule_ticket_surge"]
MONTHLY_COLUMNS = ["client_id", "month", "billed", "mrr", "labour_hours", "reactive_hours", "margin_pct",
                   "effective_hourly_rate", "tickets", "tickets_per_endpoint", "rhem", "avg_days_late", "csat_avg",
                   "endpoints"]


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.map(lambda v: float(v) if v is not None and not pd.isna(v) else np.nan),
                         errors="coerce")


def _pct_change(now: pd.Series, before: pd.Series) -> pd.Series:
    return ((now - before) / before.where(before.abs() > 1e-9) * 100).round(2)


def last_complete_month(d: date) -> str:
    """The month whose numbers are complete on day ``d``: its own month on a last day, else the one before."""
    return month_of(d) if (d + timedelta(days=1)).day == 1 else add_months(month_of(d), -1)


def month_ends(first_month: str, last_day: date) -> list[date]:
    """Last days of every month from ``first_month`` up to ``last_day``."""
    out, m = [], first_month
    while month_end(m) <= last_day:
        out.append(month_end(m))
        m = add_months(m, 1)
    return out


def monthly_features(monthly: pd.DataFrame, cfg: ChurnRules) -> pd.DataFrame:
    """Per client and month: the month's values and their trends against the 3 months before.

    Months a client has no row for count as missing (not zero), on a complete calendar grid, so "the 3
    months before" always means the 3 calendar months before."""
    m = monthly[[c for c in MONTHLY_COLUMNS if c in monthly.columns]].copy()
    for c in m.columns:
        if c not in ("client_id", "month"):
            m[c] = _num(m[c])
    if m.empty:
        return m.assign(idx=pd.Series(dtype="int64"))
    m["idx"] = m["month"].str[:4].astype(int) * 12 + m["month"].str[5:7].astype(int) - 1
    # every calendar month from a client's first to its last, clients in order
    bounds = m.groupby("client_id", sort=True)["idx"].agg(["min", "max"])
    lengths = (bounds["max"] - bounds["min"] + 1).to_numpy()
    starts = np.repeat(bounds["min"].to_numpy(), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    grid = pd.DataFrame({"client_id": np.repeat(bounds.index.to_numpy(), lengths), "idx": starts + offsets})
    m = grid.merge(m, on=["client_id", "idx"], how="left")
    m["month"] = [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in m["idx"]]
    g = m.groupby("client_id", sort=False)

    def rolling3(values: pd.Series) -> pd.Series:
        """Mean of the last 3 values of each client (as few as there are)."""
        r = values.groupby(m["client_id"], sort=False).rolling(3, min_periods=1).mean()
        return r.reset_index(level=0, drop=True).reindex(m.index)

    def prev3(col: str) -> pd.Series:
        return rolling3(g[col].shift(1))

    def last3(col: str) -> pd.Series:
        return rolling3(m[col])

    m["hours_per_ticket"] = (m["reactive_hours"] / m["tickets"].where(m["tickets"] > 0)).round(4)
    m["months_of_history"] = m["billed"].notna().astype("int64").groupby(m["client_id"], sort=False).cumsum()
    m["margin_delta_3m"] = (m["margin_pct"] - prev3("margin_pct")).round(2)
    m["ehr_change_pct_3m"] = _pct_change(m["effective_hourly_rate"], prev3("effective_hourly_rate"))
    m["labour_hours_change_pct_3m"] = _pct_change(m["labour_hours"], prev3("labour_hours"))
    tickets_prev3 = prev3("tickets")
    m["tickets_change_pct_3m"] = _pct_change(m["tickets"], tickets_prev3)
    m["hours_per_ticket_change_pct_3m"] = _pct_change(m["hours_per_ticket"], prev3("hours_per_ticket"))
    m["days_late_delta_3m"] = (m["avg_days_late"] - prev3("avg_days_late")).round(2)
    m["csat_3m"] = last3("csat_avg").round(3)
    m["csat_delta_3m"] = (m["csat_3m"] - m.groupby("client_id", sort=False)["csat_3m"].shift(3)).round(3)
    m["endpoints_change_pct_3m"] = _pct_change(m["endpoints"], g["endpoints"].shift(3))
    m["margin_tier"] = [cfg.tier(None if pd.isna(x) or (b or 0) < cfg.min_billed_for_margin else x)
                        for x, b in zip(m["margin_pct"], m["billed"].fillna(0), strict=True)]
    m["rule_margin_tier"] = m["margin_pct"] < cfg.lowest_bound
    m["rule_ehr_below_target"] = m["effective_hourly_rate"] < cfg.ehr_target
    m["rule_rhem_above_target"] = m["rhem"] > cfg.rhem_target
    m["rule_days_late"] = m["avg_days_late"] > cfg.days_late_grace
    m["rule_ticket_surge"] = (tickets_prev3 > 0) & (m["tickets"] > tickets_prev3 * (1 + cfg.ticket_surge_pct / 100))
    return m


def _window_counts(events: pd.DataFrame, day_col: str, snaps: pd.DataFrame, days: int, name: str) -> pd.Series:
    """Per snapshot row: events of the client with ``day_col`` in (snapshot − days, snapshot]."""
    out = pd.Series(0, index=snaps.index, dtype="int64", name=name)
    if events.empty or snaps.empty:
        return out
    ev = events[["client_id", day_col]].dropna()
    ev = ev.assign(_d=pd.to_datetime(ev[day_col]).dt.tz_localize(None).dt.normalize())
    by_client = {c: np.sort(g["_d"].to_numpy()) for c, g in ev.groupby("client_id")}
    s_day = pd.to_datetime(snaps["snapshot_date"]).to_numpy()
    lo = s_day - np.timedelta64(days, "D")
    vals = np.zeros(len(snaps), dtype="int64")
    for cid, rows in snaps.groupby("client_id", sort=False).indices.items():
        arr = by_client.get(cid)
        if arr is not None:
            vals[rows] = np.searchsorted(arr, s_day[rows], side="right") - np.searchsorted(arr, lo[rows], side="right")
    return pd.Series(vals, index=snaps.index, name=name)


def event_dates(lifecycle: pd.DataFrame, cfg: ChurnRules) -> pd.Series:
    """Per client: the day it ended its relationship (see the module docstring), NaT if it has not."""
    end = pd.to_datetime(lifecycle["service_end"])
    if cfg.churn_event == "notice":
        end = pd.to_datetime(lifecycle["notice_date"]).fillna(end)
    return pd.Series(end.to_numpy(), index=lifecycle["client_id"].to_numpy())


def build_snapshots(monthly: pd.DataFrame, lifecycle: pd.DataFrame, removals: pd.DataFrame,
                    remote_installs: pd.DataFrame, days: Iterable[date], cfg: ChurnRules,
                    as_of: date) -> pd.DataFrame:
    """Snapshots of every eligible client on each of ``days``, with features, rule flags and the label
    as known on ``as_of`` (columns ``event_date``, ``label``, ``label_complete``)."""
    days = sorted(set(days))
    lc = lifecycle.copy()
    lc["service_start"] = pd.to_datetime(lc["service_start"])
    lc["_event"] = event_dates(lc, cfg).to_numpy()
    lc["_end"] = pd.to_datetime(lc["service_end"])
    lc = lc[lc["service_start"].notna()]
    rows = []
    for d in days:
        ts = pd.Timestamp(d)
        ok = (lc["service_start"] <= ts) & ~(lc["_event"] <= ts) & ~(lc["_end"] <= ts)
        sel = lc.loc[ok, ["client_id"]].assign(snapshot_date=ts, month=last_complete_month(d))
        rows.append(sel)
    snaps = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["client_id", "snapshot_date",
                                                                                  "month"])
    if snaps.empty:  # typed like a filled frame, so boolean masks and date arithmetic work on it too
        empty = pd.DataFrame(columns=[*KEYS, "month", *FEATURES, *RULES, "event_date", "label", "label_complete"])
        return empty.astype({"snapshot_date": "datetime64[ns]", "event_date": "datetime64[ns]", "label": int,
                             "label_complete": bool, **dict.fromkeys(RULES, bool)})
    feats = monthly_features(monthly, cfg).drop(columns=["idx"], errors="ignore")
    snaps = snaps.merge(feats, on=["client_id", "month"], how="left")
    static = lc[["client_id", "client_type", "industry", "employee_count", "net_terms", "client_billing_cycle",
                 "service_start", "_event"]]
    snaps = snaps.merge(static, on="client_id", how="left")
    snaps["tenure_months"] = ((snaps["snapshot_date"] - snaps["service_start"]).dt.days / 30.4375).round(1)
    for c in ("employee_count", "net_terms"):
        snaps[c] = _num(snaps[c])
    snaps["agent_removals_90d"] = _window_counts(removals, "removed_at", snaps, 90, "a")
    unplanned = removals[removals["removed_by"].isin(["end_user", "unknown"]) | (removals["reason"] == "uninstalled")] \
        if not removals.empty else removals
    snaps["unplanned_removals_90d"] = _window_counts(unplanned, "removed_at", snaps, 90, "u")
    snaps["removals_per_endpoint_90d"] = (snaps["agent_removals_90d"] / snaps["endpoints"].where(
        snaps["endpoints"] > 0)).round(4)
    snaps["remote_tools_90d"] = _window_counts(remote_installs, "first_seen", snaps, 90, "r")
    horizon = pd.Timedelta(days=cfg.churn_horizon_days)
    snaps["event_date"] = snaps["_event"]
    snaps["label"] = ((snaps["_event"] > snaps["snapshot_date"])
                      & (snaps["_event"] <= snaps["snapshot_date"] + horizon)).astype(int)
    snaps["label_complete"] = snaps["snapshot_date"] + horizon <= pd.Timestamp(as_of)
    for r in RULES:
        snaps[r] = snaps[r].astype("boolean").fillna(False).astype(bool)
    cols = [*KEYS, "month", *FEATURES, *RULES, "event_date", "label", "label_complete"]
    return snaps[cols].sort_values(KEYS, kind="stable").reset_index(drop=True)


def signals(row: pd.Series | dict, cfg: ChurnRules) -> list[str]:
    """The churn signals a snapshot shows, in words, strongest kinds first (for predictions and insights).

    They explain; they do not score (the model does). A change is shown when it exceeds
    ``cpi.driver_min_change_pct`` (% or percentage points), payment drift when it exceeds
    ``cpi.days_late_grace`` days, a CSAT fall when it exceeds ``cpi.csat_drop_points``."""
    r = dict(row)

    def v(name):
        x = r.get(name)
        return None if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA else float(x)

    t = cfg.driver_min_change_pct
    out = []
    if (n := v("remote_tools_90d")) and n > 0:
        out.append(f"{n:.0f} unapproved remote-access tool(s) installed in 90 days")
    if (n := v("unplanned_removals_90d")) and n > 0:
        out.append(f"{n:.0f} RMM agent(s) removed by users or without a reason in 90 days")
    if r.get("rule_margin_tier") and v("margin_pct") is not None:
        out.append(f"margin {v('margin_pct'):.1f}% under the {cfg.lowest_bound:g}% tier")
    elif (x := v("margin_delta_3m")) is not None and x <= -t:
        out.append(f"margin {x:+.1f} pp against the 3 months before")
    if (x := v("ehr_change_pct_3m")) is not None and x <= -t:
        out.append(f"effective hourly rate {x:+.0f}%")
    elif r.get("rule_ehr_below_target") and v("effective_hourly_rate") is not None:
        out.append(f"effective hourly rate {v('effective_hourly_rate'):.0f} USD/h under the {cfg.ehr_target:g} target")
    if (x := v("tickets_change_pct_3m")) is not None and x >= cfg.ticket_surge_pct:
        out.append(f"tickets {x:+.0f}%")
    if (x := v("hours_per_ticket_change_pct_3m")) is not None and x >= t:
        out.append(f"hours per ticket {x:+.0f}%")
    if r.get("rule_days_late") and v("avg_days_late") is not None:
        out.append(f"paying {v('avg_days_late'):.0f} days after the due date")
    elif (x := v("days_late_delta_3m")) is not None and x >= cfg.days_late_grace:
        out.append(f"payments {x:+.0f} days later than before")
    if (x := v("csat_delta_3m")) is not None and x <= -cfg.csat_drop_points:
        out.append(f"CSAT {x:+.1f} points")
    if r.get("rule_rhem_above_target") and v("rhem") is not None:
        out.append(f"RHEM {v('rhem'):.2f} over {cfg.rhem_target:g}")
    return out
