"""Truth tables built at the end of a run from the plan and what the simulation recorded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.synth import catalog, cloud, names
from lakehouse.synth.crm import COMPLIANCE, MODELS, SOURCES
from lakehouse.synth.textfmt import NULL


def _date(book, day) -> str:
    return book.date(day)


def clients(book, ids: np.ndarray) -> pd.DataFrame:
    """Every client created by the window's end, with the fate planted for it (also beyond the window)."""
    c = book.w.clients

    def dates(days):
        return [_date(book, d) for d in days]

    frame = pd.DataFrame({
        "client_id": ids, "client_name": c.name, "created_date": dates(c.created_day),
        "service_start_date": dates(c.start_day), "loss_maker": c.loss_maker, "churner": c.churner,
        "signal_start_date": dates(c.signal_day), "notice_date": dates(c.notice_day),
        "agreement_end_date": dates(c.end_day), "champion_left_date": dates(c.champion_left_day),
        "rough_patch_start": dates(c.patch_start), "rough_patch_end": dates(c.patch_end),
        "won_from_lead_id": [f"LD-{x + 1:06d}" if x >= 0 else "" for x in c.lead],
    })
    return frame[c.created_day <= book.out.last_day]


SIGNALS = ("ticket_surge|longer_tickets|falling_effective_rate|payment_delays|csat_drop|agent_removals|"
           "remote_access_tools")


def churners(book, clients_frame: pd.DataFrame) -> pd.DataFrame:
    """Churners whose notice falls inside the span the truth covers."""
    last = book.w.tl.date_of(book.out.last_day).isoformat()
    c = clients_frame[clients_frame["churner"] & (clients_frame["notice_date"] != "") &
                      (clients_frame["notice_date"] <= last)]
    return c.drop(columns=["rough_patch_start", "rough_patch_end", "loss_maker", "churner"]).assign(signals=SIGNALS)


def leads(book) -> pd.DataFrame:
    """Every lead created by the window's end: whether it converted, and its planted probability."""
    w, last = book.w, book.out.last_day
    L = w.leads
    cday = L.created // 86_400
    shown = (cday <= last) & (L.final_day >= 0)
    won_day = L.stage_days[:, 5]
    c = w.clients
    client_of_lead = {int(x): i for i, x in enumerate(c.lead) if x >= 0 and c.created_day[i] <= last}
    idx = np.flatnonzero(shown)
    return pd.DataFrame({
        "lead_id": [f"LD-{i + 1:06d}" for i in idx], "created_date": [_date(book, cday[i]) for i in idx],
        "industry": np.asarray(names.INDUSTRIES)[L.industry[idx]], "employees": L.employees[idx],
        "lead_source": np.asarray(SOURCES)[L.source[idx]],
        "compliance_needs": np.asarray(COMPLIANCE)[L.compliance[idx]],
        "current_it_model": np.asarray(MODELS)[L.model[idx]],
        "p_convert": np.round(L.p_convert[idx], 4), "will_convert": L.converted[idx],
        "converted_by_window_end": L.converted[idx] & (won_day[idx] <= last),
        "converted_date": [_date(book, won_day[i]) if L.converted[i] else "" for i in idx],
        "outcome_date": [_date(book, L.final_day[i]) for i in idx],
        "client_id": [f"CL-{client_of_lead[i] + 1:05d}" if i in client_of_lead else "" for i in idx],  # by window end
    })


def spend_anomalies(book) -> pd.DataFrame:
    """Planted anomalies that started by the window's end, with the extra spend they caused by then."""
    w = book.w
    rows = []
    v = w.extra["vendors"]
    exp_month = None
    from lakehouse.synth.spend import expected_monthly

    exp_month = expected_monthly(w)
    for j, (kind, vi, s, _e, _x) in enumerate(w.extra["expense_anomalies"]):
        days = book.anomaly_days.get(("expenses", j), [])
        if s > book.out.last_day or not days:
            continue
        dept = str(v.department[vi])
        m = int(w.tl.month_of(s))
        base = exp_month[(exp_month.department == dept) & (exp_month.month == m)]["cents"].sum() / 100 / 30.4
        rows.append({"anomaly_id": f"EXP-{j + 1:03d}", "source": "expenses", "kind": kind, "department": dept,
                     "vendor_or_service": str(v.name[vi]), "vendor_id": f"VN-{vi + 1:04d}",
                     "category": str(v.expense_category[vi]), "resource_id": "", "start_date": _date(book, s),
                     "end_date": _date(book, max(d for d, _ in days)) if kind != "new_service" else "",
                     "last_day_observed": _date(book, max(d for d, _ in days)),
                     "baseline_daily": f"{base:.2f}", "impact_amount": f"{sum(x for _, x in days) / 100:.2f}"})
    cl = w.extra["cloud"]
    allsvc = cloud.SERVICES + cloud.NEW_SERVICES
    for j, (kind, res, s, _e, x) in enumerate(cl["anomalies"]):
        days = book.anomaly_days.get(("cloud", j), [])
        if s > book.out.last_day or not days:
            continue
        svc = allsvc[cl["svc"][res]]
        normal = sum(n for _, _, n in days) / max(len(days), 1) / cloud.SCALE
        rows.append({"anomaly_id": f"CLD-{j + 1:03d}", "source": "focus_costs", "kind": kind,
                     "department": cl["depts"][cl["dept"][res]], "vendor_or_service": svc[1], "vendor_id": "",
                     "category": svc[2], "resource_id": cl["resource_id"][res], "start_date": _date(book, s),
                     "end_date": _date(book, max(d for d, *_ in days)) if kind == "spike" else "",
                     "last_day_observed": _date(book, max(d for d, *_ in days)),
                     "baseline_daily": f"{0 if kind == 'new_service' else normal:.2f}",
                     "impact_amount": f"{sum(x for _, x, _ in days) / cloud.SCALE:.2f}"})
    cols = ["anomaly_id", "source", "kind", "department", "vendor_or_service", "vendor_id", "category",
            "resource_id", "start_date", "end_date", "last_day_observed", "baseline_daily", "impact_amount"]
    return pd.DataFrame(rows, columns=cols)


def _runs(frame: pd.DataFrame, keys: list[str], calendar: np.ndarray) -> pd.DataFrame:
    """Collapse snapshots into runs of consecutive snapshots (of ``calendar``) per key."""
    frame = frame.sort_values([*keys, "day"]).reset_index(drop=True)
    rank = pd.Series(np.searchsorted(calendar, frame["day"].to_numpy()), index=frame.index)
    new = (frame[keys].ne(frame[keys].shift()).any(axis=1)) | (rank.diff() != 1)
    frame["run"] = new.cumsum()
    return frame


def licence_shortfalls(book) -> pd.DataFrame:
    cols = ["client_id", "tenant_id", "sku_part_number", "first_snapshot", "last_snapshot", "snapshots",
            "max_shortfall", "planted"]
    if not book.shortfalls:
        return pd.DataFrame(columns=cols)
    from lakehouse.synth.m365 import snapshot_days

    cal = snapshot_days(book.w.tl, 0, book.w.tl.n_days)
    f = _runs(pd.concat(book.shortfalls, ignore_index=True), ["client", "sku"], cal)
    f["short"] = f["consumed"] - f["enabled"]
    g = f.groupby("run").agg(client=("client", "first"), sku=("sku", "first"), first=("day", "min"),
                             last=("day", "max"), n=("day", "size"), mx=("short", "max"), planted=("planted", "max"))
    tenant = book.w.extra["tenant_id"]
    return pd.DataFrame({
        "client_id": [f"CL-{int(c) + 1:05d}" for c in g["client"]], "tenant_id": [tenant[int(c)] for c in g["client"]],
        "sku_part_number": [catalog.M365_SKUS[int(s)][0] for s in g["sku"]],
        "first_snapshot": [_date(book, d) for d in g["first"]], "last_snapshot": [_date(book, d) for d in g["last"]],
        "snapshots": g["n"].to_numpy(), "max_shortfall": g["mx"].to_numpy(), "planted": g["planted"].to_numpy(),
    }, columns=cols)


def idle_seats(book) -> pd.DataFrame:
    cols = ["client_id", "tenant_id", "user_principal_name", "sku_part_number", "first_idle_snapshot",
            "last_idle_snapshot", "snapshots", "last_activity_date", "reason"]
    if not book.idle:
        return pd.DataFrame(columns=cols)
    f = pd.concat(book.idle, ignore_index=True)
    sku = pd.concat([f.assign(sku=f["primary"]), f[f["addon"] >= 0].assign(sku=lambda x: x["addon"])],
                    ignore_index=True)
    from lakehouse.synth.m365 import report_days

    r = _runs(sku, ["user", "sku"], report_days(book.w.tl, 0, book.w.tl.n_days))
    g = r.groupby("run").agg(client=("client", "first"), user=("user", "first"), sku=("sku", "first"),
                             first=("day", "min"), last=("day", "max"), n=("day", "size"), since=("since", "max"),
                             reason=("reason", "last"))
    u, tenant = book.w.extra["m365_users"], book.w.extra["tenant_id"]
    reasons = np.asarray(["left_company_licence_kept", "never_signed_in", "inactive"])
    return pd.DataFrame({
        "client_id": [f"CL-{int(c) + 1:05d}" for c in g["client"]], "tenant_id": [tenant[int(c)] for c in g["client"]],
        "user_principal_name": u["upn"][g["user"].to_numpy().astype(int)],
        "sku_part_number": [catalog.M365_SKUS[int(s)][0] for s in g["sku"]],
        "first_idle_snapshot": [_date(book, d) for d in g["first"]],
        "last_idle_snapshot": [_date(book, d) for d in g["last"]], "snapshots": g["n"].to_numpy(),
        "last_activity_date": [_date(book, d) if d != NULL else "" for d in g["since"]],
        "reason": reasons[g["reason"].to_numpy().astype(int)],
    }, columns=cols)
