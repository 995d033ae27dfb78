"""The planted profitability equals what an agent computes from the landing rows (dirt removed), to the cent."""

from __future__ import annotations

import pandas as pd


def cents(s: pd.Series) -> pd.Series:
    """'1234.50' -> 123450 exactly (text arithmetic, no float rounding)."""
    parts = s.str.split(".", expand=True)
    sign = s.str.startswith("-").map({True: -1, False: 1})
    return sign * (parts[0].str.lstrip("-").astype(int) * 100 + parts[1].str.ljust(2, "0").astype(int))


def month(s: pd.Series) -> pd.Series:
    return s.str[:7]


def months_between(a: str, b: str) -> list[str]:
    return [p.strftime("%Y-%m") for p in pd.period_range(a, b, freq="M")]


def latest(df: pd.DataFrame, key: str) -> pd.DataFrame:
    return df.sort_values(["updated_at", "_file", "_row"]).groupby(key).tail(1)


def recompute(run) -> pd.DataFrame:
    inv = latest(run.rows("psa", "invoices"), "invoice_id")
    void = set(inv.loc[inv["status"] == "void", "invoice_id"])
    lines = run.rows("psa", "invoice_lines")
    lines = lines[~lines["invoice_id"].isin(void)].copy()
    lines["c"] = cents(lines["amount"])
    billed: dict[tuple[str, str], int] = {}
    for r in lines.itertuples():
        ms = [month(pd.Series([r.service_period_start]))[0]] if r.line_type == "one_time" else \
            months_between(r.service_period_start[:7], r.service_period_end[:7])
        assert r.c % len(ms) == 0, f"{r.invoice_line_id}: amount not a multiple of its {len(ms)} months"
        for m in ms:
            billed[(r.client_id, m)] = billed.get((r.client_id, m), 0) + r.c // len(ms)
    adds = latest(run.rows("psa", "agreement_additions"), "addition_id")
    adds["cost"] = adds["quantity"].astype(int) * cents(adds["unit_cost"])
    te = run.rows("psa", "time_entries")
    rates = latest(run.rows("psa", "technician_cost_rates"), "cost_rate_id")
    te = te.merge(rates[["technician_id", "cost_rate", "effective_from", "effective_to"]], on="technician_id")
    te = te[(te["effective_from"] <= te["work_date"]) &
            ((te["effective_to"] == "") | (te["work_date"] <= te["effective_to"]))]
    assert te["time_entry_id"].is_unique, "a work date matches two cost rates"
    te["h100"] = cents(te["hours"])
    assert (te["h100"] * cents(te["cost_rate"]) % 100 == 0).all()
    te["cost"] = te["h100"] * cents(te["cost_rate"]) // 100
    te["m"] = month(te["work_date"])
    lab = te.groupby(["client_id", "m"]).agg(h=("h100", "sum"), cost=("cost", "sum"))
    adds_cost: dict[tuple[str, str], int] = {}
    months = sorted({m for _, m in billed} | {m for _, m in lab.index})
    for m in months:
        first, last = f"{m}-01", pd.Period(m).end_time.date().isoformat()
        on = adds[(adds["effective_date"] <= last) &
                  ((adds["cancelled_date"] == "") | (adds["cancelled_date"] >= first))]
        for client, cost in on.groupby("client_id")["cost"].sum().items():
            adds_cost[(client, m)] = int(cost)
    out = []
    for client, m in sorted(set(billed) | set(lab.index) | set(adds_cost)):
        b = billed.get((client, m), 0)
        a = adds_cost.get((client, m), 0)
        h, c = lab.loc[(client, m)].tolist() if (client, m) in lab.index else (0, 0)
        if b == 0 and a == 0 and h == 0:
            continue
        out.append({"client_id": client, "month": m, "billed": b, "adds": a, "hours": h, "labour": c,
                    "profit": b - a - c})
    return pd.DataFrame(out)


def test_profitability_matches_the_landing_rows_to_the_cent(tiny):
    mine = recompute(tiny)
    mine = mine[mine["month"] <= tiny.report.last_day.isoformat()[:7]].set_index(["client_id", "month"])
    truth = pd.read_csv(tiny.truth / "profitability_monthly.csv", dtype=str, keep_default_na=False)
    truth = truth.set_index(["client_id", "month"])
    assert sorted(mine.index) == sorted(truth.index)
    t = truth.loc[mine.index]
    assert (cents(t["billed_revenue"]).to_numpy() == mine["billed"].to_numpy()).all()
    assert (cents(t["addition_cost"]).to_numpy() == mine["adds"].to_numpy()).all()
    assert (cents(t["labour_hours"]).to_numpy() == mine["hours"].to_numpy()).all()
    assert (cents(t["labour_cost"]).to_numpy() == mine["labour"].to_numpy()).all()
    assert (cents(t["profit"]).to_numpy() == mine["profit"].to_numpy()).all()
    # ratios, rounded half-up to 2 decimals
    for (client, m), r in mine.iterrows():
        row = truth.loc[(client, m)]
        if r["billed"]:
            assert abs(float(row["margin_pct"]) - r["profit"] * 100 / r["billed"]) <= 0.005 + 1e-9
        else:
            assert row["margin_pct"] == ""
        if r["hours"]:
            assert abs(float(row["effective_hourly_rate"]) - (r["billed"] - r["adds"]) / r["hours"]) <= 0.005 + 1e-9


def test_some_clients_lose_money_and_most_do_not(tiny):
    p = pd.read_csv(tiny.truth / "profitability_monthly.csv")
    by_client = p.groupby("client_id")["profit"].sum()
    assert (by_client < 0).any(), "no loss-making client planted"
    assert (by_client > 0).mean() > 0.6
    clients = pd.read_csv(tiny.truth / "clients.csv")
    losers = set(clients.loc[clients["loss_maker"], "client_id"])
    assert losers and by_client[by_client.index.isin(losers)].mean() < by_client[~by_client.index.isin(losers)].mean()
