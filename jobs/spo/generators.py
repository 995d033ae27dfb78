"""The opportunity generators as pure functions: processed rows in, one row per condition and day out.

Each generator evaluates, for every day asked, what was known on that day (records as exported on or before
it) and returns its *findings*: one row per (day, condition) with

* ``condition``: the episode key (``kind:key``): while the same key holds day after day it is one episode;
* ``may_open``: the condition is met on the day (an episode may open); ``holds``: an open episode stays
  open (usually the same; whitespace opens only while the category is common enough, and stays open while
  the client lacks it, so a share wobbling around the threshold does not open and close it again);
* the evidence: ``metric``, ``value``, ``threshold``, ``comparison``, and what a seller needs (client, lead,
  deal, owner, money at stake, seats).

Rules (DOMAIN.md section 2 and 7; Alga PSA's generators [R2], thresholds from ``[spo]``):

* **stalled_deal**: an open deal whose last activity (its own ``last_activity_at`` or a sales activity naming
  it, else its creation) is ``stalled_days`` or more ago;
* **close_date_passed**: an open deal whose expected close date is before the day;
* **renewal**: an active flat-fee agreement whose term ends within ``renewal_window_days`` (Alga: the
  renewal packet at T-120 days);
* **tm_to_managed**: a client without an active flat-fee agreement whose time-and-materials (labour) billing
  over the ``tm_trailing_months`` calendar months up to the day's month, divided by that many months, is at
  least ``tm_monthly_threshold`` (Alga: trailing 12 months, >= 1,200 USD a month);
* **whitespace**: a service category (the catalogue's, from the client's agreement additions) that at least
  ``whitespace_min_adoption`` of the contract clients (clients with an active flat-fee agreement) have and
  this contract client lacks (Alga compares categories, not products).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from models.spo import forecast as F
from models.spo import history as H

FLAT_FEE = ("managed_services", "co_managed")
FINDING = ["day", "kind", "condition", "subject", "may_open", "holds", "opportunity_id", "client_id", "lead_id",
           "agreement_id", "service_category", "owner", "metric", "value", "threshold", "comparison",
           "expected_mrr", "expected_one_time", "seats", "days"]


def _grid(history: pd.DataFrame, key: str, days: Sequence) -> pd.DataFrame:
    """Every record of ``history`` (:func:`models.spo.history.versions`) as exported on or before each day."""
    wanted = pd.DatetimeIndex(sorted({H.as_timestamp(d) for d in days}))
    if history.empty or not len(wanted):
        return history.head(0).assign(day=pd.NaT)
    first = history.groupby(key)["_day"].min().sort_values(kind="mergesort")
    keys, firsts = first.index.to_numpy(), first.to_numpy()
    counts = np.searchsorted(firsts, wanted.to_numpy(), side="right")
    grid = pd.DataFrame({key: np.concatenate([keys[:n] for n in counts]) if counts.sum() else np.array([], object),
                         "day": np.repeat(wanted.to_numpy(), counts)})
    return H.as_of(history, key, grid) if len(grid) else history.head(0).assign(day=pd.NaT)


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=FINDING)


def deal_findings(opps: pd.DataFrame, activities: pd.DataFrame, days: Sequence, *, stalled_days: int,
                  lead_scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """stalled_deal and close_date_passed findings (see the module docstring). ``lead_scores`` (lead_id,
    dt, probability) adds the deal's lead score of the day."""
    if opps.empty:
        return _empty()
    history = F.deal_history(opps)
    st = _grid(history, "opportunity_id", days)
    st = st[st["stage"].isin(F.OPEN_STAGES)].reset_index(drop=True)
    if st.empty:
        return _empty()
    acts = F.activity_days(activities)
    last = H.day(st["last_activity_at"])
    if len(acts):
        seen = H.cumulative(acts.assign(touch=1), "opportunity_id", ["touch"], st[["opportunity_id", "day"]],
                            last=("touch",))
        found = seen.set_index(["opportunity_id", "day"])["last_touch"]
        found = found.reindex(pd.MultiIndex.from_arrays([st["opportunity_id"], st["day"]])).to_numpy()
        last = pd.concat([last, pd.Series(found, index=st.index)], axis=1).max(axis=1)
    last = last.fillna(st["created_day"])
    silent = (st["day"] - last).dt.days
    overdue = (st["day"] - st["expected_close"]).dt.days
    score = pd.Series(np.nan, index=st.index)
    if lead_scores is not None and len(lead_scores):
        s = lead_scores.assign(day=H.day(lead_scores["dt"])).set_index(["lead_id", "day"])["probability"]
        score = pd.Series(s.reindex(pd.MultiIndex.from_arrays([st["lead_id"], st["day"]])).to_numpy(), index=st.index)
    common = pd.DataFrame({"day": st["day"], "subject": "opportunity:" + st["opportunity_id"],
                           "opportunity_id": st["opportunity_id"], "client_id": None, "lead_id": st["lead_id"],
                           "agreement_id": None, "service_category": None, "owner": st["owner"],
                           "expected_mrr": st["mrr"], "expected_one_time": st["one_time_value"], "seats": None,
                           "score": score, "stage": st["stage"], "last_activity": last,
                           "expected_close": st["expected_close"]})
    stalled = common.assign(kind="stalled_deal", condition="stalled_deal:" + st["opportunity_id"],
                            metric="days_without_activity", value=silent.astype(float), threshold=float(stalled_days),
                            comparison=">=", days=silent.astype(float))[silent >= stalled_days]
    passed = common.assign(kind="close_date_passed", condition="close_date_passed:" + st["opportunity_id"] + ":"
                           + st["expected_close"].dt.strftime("%Y-%m-%d"), metric="days_past_expected_close",
                           value=overdue.astype(float), threshold=0.0, comparison=">", days=overdue.astype(float)
                           )[overdue > 0]
    out = pd.concat([stalled, passed], ignore_index=True)
    out["may_open"] = True
    out["holds"] = True
    return out


def deal_states(opps: pd.DataFrame, days: Sequence) -> pd.DataFrame:
    """Every deal as exported on or before each day (to say why an episode closed)."""
    if opps.empty:
        return pd.DataFrame(columns=["opportunity_id", "day", "stage", "expected_close"])
    return _grid(F.deal_history(opps), "opportunity_id", days)


def agreement_states(agreements: pd.DataFrame, days: Sequence) -> pd.DataFrame:
    """Every agreement as exported on or before each day, with dates as timestamps."""
    if agreements.empty:
        return pd.DataFrame(columns=["agreement_id", "client_id", "day", "status", "agreement_type", "end"])
    st = _grid(H.versions(agreements, "agreement_id"), "agreement_id", days)
    st["start"] = H.day(st["start_date"])
    st["end"] = H.day(st["end_date"])
    st["mrr_value"] = H.as_float(st["mrr"]).fillna(0.0)
    return st


def flat_fee_active(agreements: pd.DataFrame) -> pd.Series:
    """Agreement states (of :func:`agreement_states`) that are an active flat-fee agreement on their day."""
    a = agreements
    return (a["agreement_type"].isin(FLAT_FEE) & a["status"].isin(["active", "notice_given"])
            & (a["start"] <= a["day"]) & (a["end"].isna() | (a["end"] >= a["day"])))


def renewal_findings(agreements: pd.DataFrame, *, window_days: int) -> pd.DataFrame:
    """renewal findings from :func:`agreement_states`."""
    a = agreements[flat_fee_active(agreements) & (agreements["status"] == "active") & agreements["end"].notna()]
    left = (a["end"] - a["day"]).dt.days
    a, left = a[(left >= 0) & (left <= window_days)], left[(left >= 0) & (left <= window_days)]
    if a.empty:
        return _empty()
    out = pd.DataFrame({"day": a["day"], "kind": "renewal",
                        "condition": "renewal:" + a["agreement_id"] + ":" + a["end"].dt.strftime("%Y-%m-%d"),
                        "subject": "agreement:" + a["agreement_id"], "may_open": True, "holds": True,
                        "opportunity_id": None, "client_id": a["client_id"], "lead_id": None,
                        "agreement_id": a["agreement_id"], "service_category": None, "owner": None,
                        "metric": "days_to_term_end", "value": left.astype(float), "threshold": float(window_days),
                        "comparison": "<=", "expected_mrr": a["mrr_value"], "expected_one_time": 0.0, "seats": None,
                        "days": left.astype(float), "end": a["end"], "renewal_mode": a["renewal_mode"],
                        "notice_period_days": a["notice_period_days"]})
    return out.reset_index(drop=True)


def tm_findings(labour: pd.DataFrame, agreements: pd.DataFrame, days: Sequence, *, threshold: float,
                months: int) -> pd.DataFrame:
    """tm_to_managed findings: ``labour`` are labour invoice lines (client_id, amount, created_at, dt);
    ``agreements`` come from :func:`agreement_states` (a client with an active flat-fee agreement is not a
    T&M client)."""
    wanted = pd.DatetimeIndex(sorted({H.as_timestamp(d) for d in days}))
    if labour.empty or not len(wanted):
        return _empty()
    known = H.day(labour["dt"]).to_numpy()
    created = H.day(labour["created_at"])
    month_no = (created.dt.year * 12 + created.dt.month - 1).to_numpy()
    amount = H.as_float(labour["amount"]).fillna(0.0).to_numpy()
    day_month = (wanted.year * 12 + wanted.month - 1).to_numpy()
    served = set(zip(*agreements.loc[flat_fee_active(agreements), ["client_id", "day"]].to_numpy().T, strict=True)) \
        if len(agreements) else set()
    rows = []
    for client, idx in pd.Series(np.arange(len(labour))).groupby(labour["client_id"].to_numpy()):
        i = idx.to_numpy()
        inside = ((known[i][:, None] <= wanted.to_numpy()[None, :])
                  & (month_no[i][:, None] >= day_month[None, :] - (months - 1))
                  & (month_no[i][:, None] <= day_month[None, :]))
        total = (amount[i][:, None] * inside).sum(axis=0)
        for j in np.flatnonzero(total / months >= threshold):
            if (client, wanted[j]) in served:
                continue
            rows.append({"day": wanted[j], "client_id": client, "value": round(float(total[j] / months), 2),
                         "total": round(float(total[j]), 2)})
    if not rows:
        return _empty()
    hit = pd.DataFrame(rows)
    return pd.DataFrame({"day": hit["day"], "kind": "tm_to_managed", "condition": "tm_to_managed:" + hit["client_id"],
                         "subject": "client:" + hit["client_id"], "may_open": True, "holds": True,
                         "opportunity_id": None, "client_id": hit["client_id"], "lead_id": None, "agreement_id": None,
                         "service_category": None, "owner": None, "metric": "tm_billed_per_month",
                         "value": hit["value"], "threshold": float(threshold), "comparison": ">=",
                         "expected_mrr": hit["value"], "expected_one_time": 0.0, "seats": None,
                         "days": float(months), "trailing_total": hit["total"]}).reset_index(drop=True)


def _intervals(history: pd.DataFrame, key: str) -> pd.DataFrame:
    """Each version of ``history`` with the last day it was the current one (``_until``; NaT: still is)."""
    v = history.sort_values([key, "_day"], kind="mergesort")
    v = v.assign(_until=v.groupby(key)["_day"].shift(-1) - pd.Timedelta(days=1))
    return v


def owned_categories(additions: pd.DataFrame, categories: Mapping[str, str], days: pd.DatetimeIndex,
                     clients: Sequence[str], cats: Sequence[str]) -> np.ndarray:
    """Boolean (days, clients, categories): the client had an active addition of the category on the day,
    as exported on or before the day."""
    out = np.zeros((len(days), len(clients), len(cats)), dtype=bool)
    if additions.empty or not len(days):
        return out
    ci = {c: i for i, c in enumerate(clients)}
    ki = {k: i for i, k in enumerate(cats)}
    v = _intervals(H.versions(additions, "addition_id"), "addition_id")
    eff, cancel = H.day(v["effective_date"]), H.day(v["cancelled_date"])
    lo = pd.concat([v["_day"], eff], axis=1).max(axis=1)
    hi = pd.concat([v["_until"].fillna(days[-1]), cancel.fillna(days[-1])], axis=1).min(axis=1)
    start = np.searchsorted(days.to_numpy(), lo.to_numpy(), side="left")
    stop = np.searchsorted(days.to_numpy(), hi.to_numpy(), side="right")
    cat = v["product_code"].map(categories)
    for a, b, client, k in zip(start, stop, v["client_id"], cat, strict=True):
        if a < b and client in ci and k in ki:
            out[a:b, ci[client], ki[k]] = True
    return out


def whitespace_findings(agreements: pd.DataFrame, additions: pd.DataFrame, categories: Mapping[str, str],
                        days: Sequence, *, min_adoption: float, list_price: Mapping[str, tuple[float, str]],
                        users: Mapping[str, int] | None = None) -> tuple[pd.DataFrame, set]:
    """(whitespace findings, the (client, category, day) owned) from :func:`agreement_states` and the
    addition versions. ``categories`` maps a product code to its catalogue category; ``list_price`` a
    category to (price per unit, unit) of the service a proposal would add; ``users`` a client to its users."""
    wanted = pd.DatetimeIndex(sorted({H.as_timestamp(d) for d in days}))
    contract = agreements[flat_fee_active(agreements)][["client_id", "day"]].drop_duplicates()
    cats = sorted(set(categories.values()) & set(additions["product_code"].map(categories).dropna())) \
        if len(additions) else []
    if contract.empty or not cats:
        return _empty(), set()
    clients = sorted(contract["client_id"].unique())
    ci = {c: i for i, c in enumerate(clients)}
    di = {d: i for i, d in enumerate(wanted)}
    served = np.zeros((len(wanted), len(clients)), dtype=bool)
    served[contract["day"].map(di).to_numpy(), contract["client_id"].map(ci).to_numpy()] = True
    owned = owned_categories(additions, categories, wanted, clients, cats) & served[:, :, None]
    share = owned.sum(axis=1) / np.maximum(served.sum(axis=1), 1)[:, None]
    lacking = served[:, :, None] & ~owned
    d, c, k = np.nonzero(lacking)
    users = users or {}
    cat_arr, client_arr = np.asarray(cats, dtype=object)[k], np.asarray(clients, dtype=object)[c]
    unit = np.asarray([list_price.get(x, (0.0, "flat"))[1] for x in cats], dtype=object)[k]
    price = np.asarray([list_price.get(x, (0.0, "flat"))[0] for x in cats], dtype=float)[k]
    seats = pd.Series(client_arr).map(lambda x: users.get(x)).astype(float).to_numpy()
    seats = np.where(unit == "user", seats, np.nan)
    f = pd.DataFrame({"day": wanted[d], "kind": "whitespace",
                      "condition": "whitespace:" + pd.Series(client_arr) + ":" + pd.Series(cat_arr),
                      "subject": "client:" + pd.Series(client_arr), "may_open": share[d, k] >= min_adoption,
                      "holds": True, "opportunity_id": None, "client_id": client_arr, "lead_id": None,
                      "agreement_id": None, "service_category": cat_arr, "owner": None,
                      "metric": "category_adoption_share", "value": np.round(share[d, k], 4),
                      "threshold": float(min_adoption), "comparison": ">=", "expected_mrr": seats * price,
                      "expected_one_time": 0.0, "seats": seats, "days": np.nan,
                      "adopted": owned.sum(axis=1)[d, k], "contract_clients": served.sum(axis=1)[d]})
    dd, cc, kk = np.nonzero(owned)
    have = set(zip(np.asarray(clients, dtype=object)[cc], np.asarray(cats, dtype=object)[kk], wanted[dd], strict=True))
    return f, have
