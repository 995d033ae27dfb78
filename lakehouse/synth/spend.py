"""The MSP's own spending: expenses by department and vendor, monthly budgets, and planted anomalies.

Recurring subscriptions bill on a fixed day each month (a month-end and month-start bump); usage purchases
happen on business days. Anomalies are planted in three kinds: a one-day spike, a level shift (a vendor's
purchases run 70-120 % higher for months) and a new service (a vendor never seen before starts billing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.synth import catalog
from lakehouse.synth.rng import stream
from lakehouse.synth.rows import Rows, clock
from lakehouse.synth.textfmt import NULL, ids
from lakehouse.synth.vendors import VENDOR_ID, plan_vendors

EXPENSE_ID = ("EX-", 7)
BUDGET_ID = ("BG-", 5)
KINDS = ("spike", "level_shift", "new_service")
DESCRIPTIONS = {
    "software_subscriptions": "Subscription", "hardware": "Hardware purchase", "telecom": "Telecom services",
    "office": "Office rent and supplies", "marketing": "Marketing services", "training": "Training course",
    "contractors": "Contractor hours", "insurance": "Insurance premium", "professional_services": "Professional fees",
    "travel": "Travel and mileage", "hosting": "Colocation and hosting", "events": "Event sponsorship",
}


def anomaly_windows(w, name: str, count_in_window: int) -> np.ndarray:
    """Start days: ``count_in_window`` inside the default window, a few more in the rest of the horizon."""
    sc, rng = w.scale, stream(w.seed, f"anomalies-{name}")
    lo, hi = 45, max(60, sc.days - 25)
    inside = rng.integers(lo, hi, count_in_window)
    extra = rng.integers(sc.days, w.tl.n_days - 10, round(count_in_window * (w.tl.n_days - sc.days) / sc.days))
    return np.sort(np.concatenate([inside, extra])).astype(np.int64)


def plan(w) -> None:
    k = w.scale.anomalies_per_kind
    new_days = anomaly_windows(w, "expense-new", k)
    v = plan_vendors(w, len(new_days))
    w.extra["vendors"] = v
    rng = stream(w.seed, "spend-anomalies")
    usage = np.flatnonzero((v.rate > 0) & ~v.anomaly)
    anomalies = []
    for d in anomaly_windows(w, "expense-spike", k):
        vi = int(usage[rng.integers(0, len(usage))])
        dept = v.department == v.department[vi]
        daily = (v.recurring[dept].sum() / 30.4 + (v.rate[dept] * v.median[dept]).sum() * 21 / 30.4)
        anomalies.append(("spike", vi, int(d), int(d), float(daily * rng.uniform(5, 9))))
    for d in anomaly_windows(w, "expense-shift", k):
        vi = int(usage[rng.integers(0, len(usage))])
        anomalies.append(("level_shift", vi, int(d), int(d + rng.integers(60, 180)), float(rng.uniform(0.7, 1.2))))
    new_idx = np.flatnonzero(v.anomaly)
    depts = np.asarray(catalog.DEPARTMENTS[:5], dtype=object)
    for j, d in enumerate(new_days):
        vi = int(new_idx[j])
        v.department[vi] = depts[rng.integers(0, len(depts))]
        v.created[vi] = d
        v.recurring[vi] = int(rng.integers(15, 60)) * 10_000 * int(max(1, round((w.scale.clients / 150) ** 0.5)))
        anomalies.append(("new_service", vi, int(d), NULL, 0.0))
    w.extra["expense_anomalies"] = anomalies


def simulate_month(w, m: int, sinks, book) -> None:
    tl, v = w.tl, w.extra["vendors"]
    d0, d1 = tl.month_range(m)
    d1 = min(d1, tl.n_days)
    if d0 >= d1:
        return
    rng = stream(w.seed, "expenses", m)
    days = np.arange(d0, d1)
    cols = {k: [] for k in ("vendor", "day", "amount", "recurring", "anomaly")}

    def add(vendor, day, amount, recurring, anomaly=-1):
        cols["vendor"].append(np.asarray(vendor)), cols["day"].append(np.asarray(day))
        cols["amount"].append(np.asarray(amount)), cols["recurring"].append(np.full(len(day), recurring))
        cols["anomaly"].append(np.full(len(day), anomaly))

    # recurring subscriptions: a fixed day of the month per vendor, 3 % more each January
    rec = np.flatnonzero(v.recurring > 0)
    dom = np.where(v.anomaly[rec], tl.dom[np.clip(v.created[rec], 0, tl.n_days - 1)] - 1, (rec * 7) % 28)
    bill_day = d0 + np.minimum(dom, d1 - d0 - 1)
    year = tl.calendar_year(m) - tl.start.year
    amount = np.round(v.recurring[rec] * 1.03**year).astype(np.int64)
    alive = (v.created[rec] != NULL) & (v.created[rec] <= bill_day) & (bill_day < d1)
    alive &= ~v.anomaly[rec] | (bill_day >= v.created[rec])
    add(rec[alive], bill_day[alive], amount[alive], True,
        np.where(v.anomaly[rec[alive]], _anomaly_of(w, rec[alive]), -1))
    # usage purchases on business days
    use = np.flatnonzero((v.rate > 0) & ~v.anomaly)
    bd = days[tl.business[days]]
    if len(bd) and len(use):
        lam = np.outer(v.rate[use], np.ones(len(bd)))
        n = rng.poisson(lam)
        vv = np.repeat(np.repeat(use, len(bd)), n.ravel())
        dd = np.repeat(np.tile(bd, len(use)), n.ravel())
        amt = np.round(v.median[vv] * rng.lognormal(0, 0.6, len(vv))).astype(np.int64)
        add(vv, dd, amt, False)
        # planted: spikes and level shifts
        for j, (kind, vi, s, e, x) in enumerate(w.extra["expense_anomalies"]):
            if kind == "spike" and d0 <= s < d1:  # x: the amount, 5-9 times the department's daily spend
                add([vi], [s], [round(x / 100) * 100], False, j)
            elif kind == "level_shift" and s < d1 and e >= d0:
                inside = bd[(bd >= s) & (bd <= e)]
                k = rng.poisson(v.rate[vi] * x, len(inside))
                dd = np.repeat(inside, k)
                add(np.full(len(dd), vi), dd, np.round(v.median[vi] * rng.lognormal(0, 0.6, len(dd))).astype(
                    np.int64), False, j)
    f = {k: np.concatenate(x).astype(np.int64) if x else np.zeros(0, np.int64) for k, x in cols.items()}
    if not len(f["day"]):
        return
    f["amount"] = np.maximum(f["amount"], 100)
    order = np.lexsort((f["vendor"], f["day"]))
    f = {k: x[order] for k, x in f.items()}
    seq = w.state.get("expense_seq", 0)
    n = len(f["day"])
    w.state["expense_seq"] = seq + n
    eid = seq + np.arange(n) + 1
    vi = f["vendor"]
    book.expenses(f["day"], f["amount"], f["anomaly"], v.department[vi])
    created = clock(w.seed, "expense", f["day"], eid, 15, 23)
    cats = v.expense_category[vi]
    desc = np.asarray([DESCRIPTIONS[c] for c in cats], dtype=object)
    desc = np.where(f["recurring"].astype(bool), desc + " - " + np.asarray(
        [tl.date_of(int(d)).strftime("%B %Y") for d in f["day"]], dtype=object), desc)
    sinks["expenses"].add(f["day"], created, expense_id=ids(*EXPENSE_ID, eid), expense_date=f["day"],
                          department=v.department[vi], vendor_id=ids(*VENDOR_ID, vi + 1), vendor_name=v.name[vi],
                          category=cats, description=desc, amount=f["amount"], currency="USD",
                          payment_method=np.where(f["recurring"].astype(bool), "ach",
                                                  np.where(f["amount"] > 200000, "invoice", "corporate_card")
                                                  ).astype(object), recurring=f["recurring"].astype(bool),
                          created_at=created)


def _anomaly_of(w, vendors: np.ndarray) -> np.ndarray:
    index = {vi: j for j, (kind, vi, *_r) in enumerate(w.extra["expense_anomalies"]) if kind == "new_service"}
    return np.asarray([index.get(int(x), -1) for x in vendors], dtype=np.int64)


def expected_monthly(w) -> pd.DataFrame:
    """Expected spend per department and month without anomalies (expenses + cloud), the basis of budgets."""
    tl, v = w.tl, w.extra["vendors"]
    months = np.arange(tl.n_months)
    bdays = np.array([tl.business[tl.month_range(m)[0]:min(tl.month_range(m)[1], tl.n_days)].sum() for m in months])
    rows = []
    for d in catalog.DEPARTMENTS:
        sel = (v.department == d) & ~v.anomaly
        rec = v.recurring[sel].sum() * 1.03 ** (tl.calendar_year(months) - tl.start.year)
        usage = (v.rate[sel] * v.median[sel] * np.exp(0.18)).sum() * bdays
        cloud = w.extra["cloud_expected"].get(d, np.zeros(len(months)))
        rows.append(pd.DataFrame({"department": d, "month": months, "cents": rec + usage + cloud}))
    return pd.concat(rows, ignore_index=True)


def emit_budgets(w, sinks) -> None:
    """Budgets for each calendar year, exported on December 1 before it; some are revised mid-year."""
    tl = w.tl
    rng = stream(w.seed, "budgets")
    exp = expected_monthly(w)
    n = len(exp)
    amount = (np.round(exp["cents"].to_numpy() * rng.uniform(0.97, 1.08, n) / 10000) * 10000).astype(np.int64)
    month = exp["month"].to_numpy()
    dept = exp["department"].to_numpy(dtype=object)
    year = tl.calendar_year(month)
    published = np.array([max(0, tl.day_of(type(tl.start)(int(y) - 1, 12, 1))) for y in year])
    bid = np.arange(n)
    r = Rows()
    approved = clock(w.seed, "budget", published, bid)
    r.add(_day=published, _order=bid, budget_id=ids(*BUDGET_ID, bid + 1).to_numpy(zero_copy_only=False),
          fiscal_year=year, month=tl.calendar_month(month), department=dept, amount=amount, currency="USD",
          version=np.ones(n, np.int64), approved_at=approved, updated_at=approved)
    # revisions: a department's budget raised from some month on
    for y in np.unique(year):
        for d in catalog.DEPARTMENTS:
            if rng.random() < 0.15:
                sel = np.flatnonzero((year == y) & (dept == d))
                cut = sel[rng.integers(3, 9):] if len(sel) > 9 else sel[:0]
                if not len(cut):
                    continue
                day = int(tl.first_day(month[cut[0]])) - 10
                new = (np.round(amount[cut] * rng.uniform(1.05, 1.2) / 10000) * 10000).astype(np.int64)
                at = clock(w.seed, "budget-rev", np.full(len(cut), day), cut)
                r.add(_day=np.full(len(cut), day), _order=cut, budget_id=ids(*BUDGET_ID, cut + 1).to_numpy(
                    zero_copy_only=False), fiscal_year=year[cut], month=tl.calendar_month(month[cut]),
                    department=dept[cut], amount=new, currency="USD", version=np.full(len(cut), 2),
                    approved_at=at, updated_at=at)
    r.emit(sinks["budgets"], "budget_id", order="_order")
