"""Invoicing and collections, month by month.

On the 1st of each month the PSA invoices, per client: the agreement fee and additions for every billing
period that starts that month (calendar months, quarters or years, in advance), time and materials hours
of the previous month (in arrears), and the fixed fee of projects starting that month. A few invoices are
voided and re-issued. Payments arrive around the due date; churners pay later and later.
"""

from __future__ import annotations

import numpy as np

from lakehouse.synth import catalog
from lakehouse.synth.clients import CYCLE_MONTHS
from lakehouse.synth.psa_entities import AGREEMENT_ID, cid
from lakehouse.synth.rng import stream
from lakehouse.synth.textfmt import NULL, ids, pick
from lakehouse.synth.timeline import DAY

INVOICE_ID = ("IN-", 7)
LINE_ID = ("IL-", 8)
PAYMENT_ID = ("PY-", 7)
LINE_TYPES = ("recurring", "addition", "labour", "one_time")
METHODS = ("ach", "check", "credit_card", "wire")


def simulate_month(w, m: int, sinks, book) -> None:
    tl, c = w.tl, w.clients
    d0 = int(tl.first_day(m))
    if d0 >= tl.n_days:
        return
    rng = stream(w.seed, "billing", m)
    cal = tl.calendar_month(m) - 1
    # ---- recurring fee and additions, for billing periods starting this month
    months = CYCLE_MONTHS[c.cycle]
    end_month = np.where(c.end_day == NULL, 10**6, tl.month_of(np.where(c.end_day == NULL, 0, c.end_day)))
    fee = c.has_agreement_fee & (c.start_month <= m) & (end_month >= m)
    starts = fee & ((c.start_month == m) | (cal % months == 0))
    last_m = np.minimum(m + months - 1 - cal % months, end_month)
    n_months = last_m - m + 1
    mrr = c.mrr_in_month(np.full(c.n, m), tl)
    L = {k: [] for k in ("client", "type", "code", "desc", "qty100", "price", "sp_start", "sp_end")}

    def lines(client, type_, code, desc, qty100, price, sp_start, sp_end):
        for key, val in (("client", client), ("type", np.full(len(client), type_)), ("code", code), ("desc", desc),
                         ("qty100", qty100), ("price", price), ("sp_start", sp_start), ("sp_end", sp_end)):
            L[key].append(np.asarray(val))

    b = np.flatnonzero(starts)
    sp_end = tl.last_day(last_m[b])
    lines(b, 0, np.full(len(b), "MSA-FEE", dtype=object),
          np.asarray([f"Managed services fee, {k} month{'s' if k > 1 else ''}" for k in n_months[b]], dtype=object),
          np.full(len(b), 100), mrr[b] * n_months[b], np.full(len(b), d0), sp_end)
    a = w.additions
    on = starts[a.client] & (a.effective <= d0) & ((a.cancelled == NULL) | (a.cancelled >= d0))
    ai = np.flatnonzero(on)
    ac = a.client[ai]
    lines(ac, 1, np.asarray([catalog.ADDITIONS[p][0] for p in a.product[ai]], dtype=object),
          np.asarray([catalog.ADDITIONS[p][1] for p in a.product[ai]], dtype=object), a.quantity[ai] * 100,
          a.unit_price[ai] * n_months[ac], np.full(len(ai), d0), tl.last_day(last_m[ac]))
    # ---- time and materials hours of last month, in arrears
    tm = w.state.get("tm_hours10", {}).pop(m - 1, None)
    if tm is not None:
        t_idx = np.flatnonzero(tm > 0)
        p0, p1 = tl.month_range(m - 1)
        lines(t_idx, 2, np.full(len(t_idx), "LABOR-TM", dtype=object),
              np.full(len(t_idx), "Time and materials labour", dtype=object), tm[t_idx] * 10,
              c.hourly_rate[t_idx], np.full(len(t_idx), p0), np.full(len(t_idx), p1 - 1))
    # ---- fixed-fee projects starting this month
    p = w.projects
    pj = np.flatnonzero(p.fixed & (tl.month_of(p.start) == m))
    lines(p.client[pj], 3, np.full(len(pj), "PROJECT", dtype=object),
          np.asarray([f"Project fee (PJ-{k + 1:05d})" for k in pj], dtype=object), np.full(len(pj), 100),
          p.fee[pj], p.start[pj], p.due[pj])
    f = {k: np.concatenate(v) if v else np.array([]) for k, v in L.items()}
    if len(f["client"]) == 0:
        return
    f["client"] = f["client"].astype(np.int64)
    f["amount"] = f["qty100"].astype(np.int64) * f["price"].astype(np.int64) // 100
    order = np.lexsort((f["type"], f["client"]))
    f = {k: v[order] for k, v in f.items()}
    clients = np.unique(f["client"])
    inv_of_line = np.searchsorted(clients, f["client"])
    k = len(clients)
    subtotal = np.zeros(k, dtype=np.int64)
    np.add.at(subtotal, inv_of_line, f["amount"])
    seq = w.state.get("invoice_seq", 0)
    inv = seq + np.arange(k) + 1
    # voided invoices are re-issued a few days later with the same lines
    void = rng.random(k) < 0.015
    void_day = np.where(void, d0 + rng.integers(1, 9, k), NULL)
    vi = np.flatnonzero(void)
    repl = seq + k + np.arange(len(vi)) + 1
    w.state["invoice_seq"] = seq + k + len(vi)
    issue = np.concatenate([np.full(k, d0), void_day[vi]])
    all_inv = np.concatenate([inv, repl])
    all_client = np.concatenate([clients, clients[vi]])
    all_sub = np.concatenate([subtotal, subtotal[vi]])
    replaces = np.concatenate([np.full(k, -1), inv[vi]])
    all_void = np.concatenate([void_day, np.full(len(vi), NULL)])
    # lines of the replacements
    in_void = np.isin(inv_of_line, vi)
    rep_of = np.searchsorted(vi, inv_of_line[in_void])
    line_inv = np.concatenate([inv_of_line, k + rep_of])
    lf = {key: np.concatenate([v, v[in_void]]) for key, v in f.items()}
    _emit_lines(w, sinks, book, lf, all_inv[line_inv], issue[line_inv], all_void[line_inv])
    pays = _payments(w, sinks, rng, all_inv, all_client, issue, all_sub, all_void)
    _emit_invoices(w, sinks, all_inv, all_client, issue, all_sub, all_void, replaces, pays)


def _emit_lines(w, sinks, book, f, inv, issue, void_day) -> None:
    n = len(inv)
    seq = w.state.get("line_seq", 0)
    w.state["line_seq"] = seq + n
    lid = seq + np.arange(n) + 1
    book.billed(f["client"], f["type"], f["amount"], f["sp_start"], f["sp_end"], issue, void_day)
    created = issue * DAY + 6 * 3600 + (inv % 3600)
    sinks["invoice_lines"].add(issue, lid, invoice_line_id=ids(*LINE_ID, lid),
                               invoice_id=ids(*INVOICE_ID, inv), client_id=cid(f["client"]),
                               agreement_id=ids(*AGREEMENT_ID, f["client"] + 1),
                               line_type=pick(LINE_TYPES, f["type"]), product_code=f["code"],
                               description=f["desc"], quantity=f["qty100"], unit_price=f["price"],
                               amount=f["amount"], service_period_start=f["sp_start"],
                               service_period_end=f["sp_end"], created_at=created)


def _payments(w, sinks, rng, inv, client, issue, total, void_day) -> dict:
    tl, c = w.tl, w.clients
    n = len(inv)
    due = issue + c.net_terms[client]
    pay = void_day == NULL
    sig = c.signal(np.clip(due, 0, tl.n_days - 1))[client, np.arange(n)] if n else np.zeros(0)
    patch = c.patch(np.clip(due, 0, tl.n_days - 1))[client, np.arange(n)] if n else np.zeros(0)
    late = rng.normal(c.pay_delay[client] + 26 * sig + 14 * patch, 4 + 6 * sig)
    day = tl.business_day_on_or_after(np.maximum(issue + 3, np.round(due + late).astype(np.int64)))
    after_end = (c.end_day[client] != NULL) & (issue > c.notice_day[client])
    unpaid = rng.random(n) < np.where(after_end, 0.25, 0.003)
    pay &= ~unpaid & (total > 0)
    partial = pay & (rng.random(n) < 0.04)
    first = np.where(partial, (total * rng.uniform(0.4, 0.7, n)).astype(np.int64), total)
    second_day = tl.business_day_on_or_after(day + rng.integers(10, 30, n))
    idx = np.flatnonzero(pay)
    pidx = np.flatnonzero(partial)
    p_inv = np.concatenate([idx, pidx])
    p_day = np.concatenate([day[idx], second_day[pidx]])
    p_amt = np.concatenate([first[idx], total[pidx] - first[pidx]])
    order = np.lexsort((p_inv, p_day))
    p_inv, p_day, p_amt = p_inv[order], p_day[order], p_amt[order]
    seq = w.state.get("payment_seq", 0)
    w.state["payment_seq"] = seq + len(p_inv)
    pid = seq + np.arange(len(p_inv)) + 1
    method = rng.choice(4, len(p_inv), p=[0.55, 0.25, 0.15, 0.05])
    ref = np.asarray([f"{'CHK' if mth == 1 else 'TRX'}{x:08d}" for mth, x in zip(
        method, rng.integers(10**7, 10**8, len(p_inv)), strict=True)], dtype=object)
    created = p_day * DAY + 16 * 3600 + (pid % 7200)
    sinks["payments"].add(p_day, created, payment_id=ids(*PAYMENT_ID, pid), invoice_id=ids(*INVOICE_ID, inv[p_inv]),
                          client_id=cid(client[p_inv]), payment_date=p_day, amount=p_amt,
                          method=pick(METHODS, method), reference=ref, created_at=created)
    return {"paid_day": np.where(pay, np.where(partial, second_day, day), NULL),
            "partial_day": np.where(partial, day, NULL)}


def _emit_invoices(w, sinks, inv, client, issue, subtotal, void_day, replaces, pays) -> None:
    n = len(inv)
    due = issue + w.clients.net_terms[client]
    created = issue * DAY + 6 * 3600 + (inv % 3600)
    events = [(np.arange(n), issue, 0, NULL)]
    v = np.flatnonzero(void_day != NULL)
    events.append((v, void_day[v], 3, void_day[v] * DAY + 17 * 3600))
    pp = np.flatnonzero(pays["partial_day"] != NULL)
    events.append((pp, pays["partial_day"][pp], 1, NULL))
    pd = np.flatnonzero(pays["paid_day"] != NULL)
    events.append((pd, pays["paid_day"][pd], 2, NULL))
    for sel, day, status, voided in events:
        voided_at = np.full(len(sel), voided) if not isinstance(voided, np.ndarray) else voided
        upd = np.where(status == 0, created[sel], day * DAY + 17 * 3600 + (inv[sel] % 1800))
        sinks["invoices"].add(day, inv[sel], invoice_id=ids(*INVOICE_ID, inv[sel]),
                              invoice_number=ids("INV-", 6, inv[sel] + 10_000), client_id=cid(client[sel]),
                              agreement_id=ids(*AGREEMENT_ID, client[sel] + 1), invoice_date=issue[sel],
                              due_date=due[sel], status=pick(("sent", "partial", "paid", "void"), np.full(
                                  len(sel), status)), currency="USD", subtotal=subtotal[sel],
                              tax_amount=np.zeros(len(sel), np.int64), total=subtotal[sel], voided_at=voided_at,
                              replaces_invoice_id=ids(*INVOICE_ID, np.where(replaces[sel] > 0, replaces[sel], -1)),
                              created_at=created[sel], updated_at=upd)
