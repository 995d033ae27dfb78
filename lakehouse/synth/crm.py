"""Leads, opportunities and sales activities; the leads that convert become clients of the MSP.

Conversion is planted through a latent score built from the lead's features (referral, size, compliance
needs, current IT model) plus noise; engagement counters follow a noisy copy of that score. A model can
therefore learn who converts, but never perfectly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.synth import names
from lakehouse.synth.rng import stream
from lakehouse.synth.rows import Rows
from lakehouse.synth.scales import Scale
from lakehouse.synth.textfmt import NULL, ids, pick
from lakehouse.synth.timeline import DAY, Timeline

MODELS = ("in_house", "break_fix", "other_msp", "none")
SOURCES = ("referral", "website", "event", "partner", "cold_outreach", "paid_search")
COMPLIANCE = ("none", "HIPAA", "PCI-DSS", "SOC2", "CMMC", "GLBA")
STAGES = ("identified", "qualified", "assessment", "proposed", "verbal", "won", "lost")
LOSS = ("no_response", "chose_competitor", "price", "timing", "no_budget", "not_a_fit")
COMPETITORS = ("Peak IT Partners", "Rocky Mountain Managed IT", "BlueLine Tech", "Vertex Networks", "in-house hire")
STATUSES = ("new", "working", "qualified", "nurture", "disqualified", "converted")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


@dataclass
class Leads:
    n: int
    created: np.ndarray  #: seconds
    company: np.ndarray
    industry: np.ndarray
    employees: np.ndarray
    endpoints: np.ndarray
    locations: np.ndarray
    compliance: np.ndarray
    model: np.ndarray
    source: np.ndarray
    referred_by: np.ndarray  #: client index or -1
    owner: np.ndarray
    p_convert: np.ndarray
    converted: np.ndarray
    qualified: np.ndarray
    working_day: np.ndarray
    qualified_day: np.ndarray  #: NULL if never
    final_day: np.ndarray  #: converted / disqualified / nurture day
    final_status: np.ndarray  #: index into STATUSES
    interest: np.ndarray
    web_visits: np.ndarray  #: totals at final_day
    forms: np.ndarray
    meetings: np.ndarray
    assessment_day: np.ndarray
    stage_days: np.ndarray  #: (n, 6) day of identified..verbal, won; NULL if not reached
    lost_day: np.ndarray
    loss_reason: np.ndarray
    mrr: np.ndarray  #: cents
    one_time: np.ndarray
    rep_names: np.ndarray


def plan_leads(scale: Scale, seed: int, tl: Timeline, n_initial_clients: int) -> Leads:
    rng = stream(seed, "leads")
    months = np.arange(-4, tl.n_months)
    season = 1 + 0.15 * np.cos((tl.calendar_month(months) - 2) / 12 * 2 * np.pi)
    per_month = rng.poisson(scale.leads_per_month * season)
    first = tl.first_day(months)
    length = tl.first_day(months + 1) - first
    day = np.repeat(first, per_month) + (rng.random(per_month.sum()) * np.repeat(length, per_month)).astype(int)
    day = np.sort(day[day < tl.n_days])
    n = len(day)
    created = day * DAY + rng.integers(14 * 3600, 23 * 3600, n)
    industry = rng.choice(len(names.INDUSTRIES), n, p=names.INDUSTRY_WEIGHTS / names.INDUSTRY_WEIGHTS.sum())
    employees = np.clip(np.round(rng.lognormal(np.log(22), 0.8, n)), 3, 800).astype(np.int64)
    endpoints = np.maximum(3, np.round(employees * rng.uniform(0.8, 1.25, n))).astype(np.int64)
    locations = 1 + (rng.random(n) < 0.25) + (rng.random(n) < 0.08)
    ind = np.asarray(names.INDUSTRIES)[industry]
    comp = np.zeros(n, dtype=np.int64)
    comp = np.where((ind == "healthcare") & (rng.random(n) < 0.85), 1, comp)
    comp = np.where(np.isin(ind, ["retail", "hospitality"]) & (rng.random(n) < 0.6), 2, comp)
    comp = np.where(np.isin(ind, ["professional_services", "accounting"]) & (rng.random(n) < 0.3), 3, comp)
    comp = np.where(np.isin(ind, ["manufacturing", "engineering"]) & (rng.random(n) < 0.3), 4, comp)
    comp = np.where((ind == "financial") & (rng.random(n) < 0.8), 5, comp)
    model = rng.choice(4, n, p=[0.3, 0.3, 0.28, 0.12])
    source = rng.choice(6, n, p=[0.16, 0.3, 0.1, 0.08, 0.2, 0.16])
    referred = np.where(source == 0, rng.integers(0, max(1, n_initial_clients), n), -1)
    owner = rng.integers(0, scale.sales_reps, n)
    z = (-2.9 + 1.2 * (source == 0) + 0.6 * (source == 3) + 0.2 * (source == 2) - 0.6 * (source == 4)
         + 0.45 * np.log(employees / 22) + 0.7 * (comp > 0) + 0.6 * np.isin(model, [1, 2]) - 0.5 * (model == 0)
         + rng.normal(0, 0.7, n))
    p = sigmoid(z)
    converted = rng.random(n) < p
    interest = z + rng.normal(0, 0.9, n)
    qualified = converted | (rng.random(n) < 0.3 * sigmoid(interest + 1.5))
    working = day + rng.integers(1, 5, n)
    qday = np.where(qualified, working + rng.integers(5, 30, n), NULL)
    stage = np.full((n, 6), NULL, dtype=np.int64)
    stage[:, 0] = np.where(qualified, qday, NULL)
    gaps = rng.integers([2, 7, 7, 5, 3], [8, 21, 21, 16, 11], (n, 5))
    for s in range(1, 6):
        stage[:, s] = np.where(qualified, stage[:, s - 1] + gaps[:, s - 1], NULL)
    # losers stop at a random stage and are lost a while later
    stop = rng.integers(0, 5, n)
    lost_day = np.where(qualified & ~converted, stage[np.arange(n), stop] + rng.integers(7, 30, n), NULL)
    for s in range(1, 6):
        cut = qualified & ~converted & (s > stop)
        stage[cut, s] = NULL
    reason = np.where(lost_day != NULL, rng.choice(len(LOSS), n, p=[0.25, 0.25, 0.2, 0.12, 0.1, 0.08]), -1)
    final = np.where(converted, stage[:, 5],
                     np.where(qualified, lost_day, working + rng.integers(10, 70, n)))
    final_status = np.where(converted, 5, np.where(rng.random(n) < 0.6, 4, 3))
    web = rng.poisson(np.exp(1.2 + 0.35 * interest))
    forms = rng.poisson(np.exp(-1.0 + 0.45 * interest))
    meetings = np.where(qualified, 1 + rng.poisson(np.exp(-0.2 + 0.4 * interest)), rng.poisson(0.2, n))
    assess = np.where(stage[:, 2] != NULL, stage[:, 2] + rng.integers(3, 10, n), NULL)
    mrr = (np.round(endpoints * rng.uniform(70, 95, n)) * 100).astype(np.int64)
    one_time = (np.round(endpoints * rng.uniform(35, 60, n) / 50) * 5000).astype(np.int64)
    rf, rl = names.people(stream(seed, "sales-reps"), scale.sales_reps)
    reps = np.asarray([f"{a} {b}" for a, b in zip(rf, rl, strict=True)], dtype=object)
    company = names.companies(stream(seed, "lead-names"), industry)
    return Leads(n, created, company, industry, employees, endpoints, locations, comp, model, source, referred,
                 owner, p, converted, qualified, working, qday, final, final_status, interest, web, forms,
                 meetings, assess, stage, lost_day, reason, mrr, one_time, reps)


def won(leads: Leads, tl: Timeline) -> dict:
    """The converted leads that close inside the horizon: they become clients."""
    won_day = leads.stage_days[:, 5]
    w = np.flatnonzero(leads.converted & (won_day >= 0) & (won_day < tl.n_days - 40))
    return {"lead": w, "day": leads.stage_days[w, 5], "industry": leads.industry[w],
            "employees": leads.employees[w], "endpoints": leads.endpoints[w], "name": leads.company[w]}


# ---- exports --------------------------------------------------------------------------------------
LEAD_ID = ("LD-", 6)
OPP_ID = ("OP-", 6)
ACTIVITY_ID = ("AC-", 7)
EMAIL_SUBJECTS = ("Following up on our conversation", "Managed IT services overview", "Your network assessment",
                  "Proposal for managed services", "Quick question about your IT", "Cybersecurity checklist",
                  "Re: pricing", "Re: next steps", "Case study: a client like you", "Scheduling our meeting")
CALL_SUBJECTS = ("Discovery call", "Follow-up call", "Assessment review", "Proposal walkthrough", "Check-in")
OUTCOMES = ("sent", "replied", "connected", "voicemail", "no_answer", "meeting_booked")


def plan_activities(seed: int, tl: Timeline, leads: Leads) -> dict:
    """Every e-mail and call of every lead, sorted by time."""
    rng = stream(seed, "activities")
    n = leads.n
    q = leads.qualified.astype(float)
    k_out = rng.poisson(np.clip(2.5 + 2.5 * q + leads.interest, 1, 12))
    k_in = rng.poisson(np.clip(0.6 + 1.5 * q + 0.5 * leads.interest, 0, 8))
    k_call = rng.poisson(1.5 + 2.5 * q)
    kind = np.concatenate([np.zeros(k_out.sum(), int), np.ones(k_in.sum(), int), np.full(k_call.sum(), 2)])
    lead = np.concatenate([np.repeat(np.arange(n), k_out), np.repeat(np.arange(n), k_in),
                           np.repeat(np.arange(n), k_call)])
    t0 = leads.created[lead]
    t1 = np.maximum(leads.final_day[lead] * DAY, t0 + DAY)
    at = t0 + (rng.random(len(lead)) * (t1 - t0)).astype(np.int64)
    at = (at // DAY) * DAY + rng.integers(14 * 3600, 23 * 3600, len(lead))
    at = np.maximum(at, t0 + 600)
    it = leads.interest[lead]
    opened = np.where(kind == 0, rng.random(len(lead)) < sigmoid(it + 0.3), False)
    clicked = opened & (rng.random(len(lead)) < sigmoid(it - 1.2))
    u = rng.random(len(lead))
    call_out = np.where(u < 0.06 + 0.04 * sigmoid(it), 5, np.where(u < 0.5, 2, np.where(u < 0.8, 3, 4)))
    outcome = np.where(kind == 0, 0, np.where(kind == 1, 1, call_out))
    dur = np.where(kind == 2, np.where(np.isin(outcome, [2, 5]), rng.lognormal(np.log(420), 0.6, len(lead)),
                                       np.where(outcome == 3, rng.integers(20, 60, len(lead)), 0)), NULL)
    order = np.lexsort((lead, at))
    out = {"lead": lead, "kind": kind, "at": at, "opened": opened, "clicked": clicked, "outcome": outcome,
           "duration": dur.astype(np.int64), "subject": rng.integers(0, 100, len(lead))}
    out = {k: v[order] for k, v in out.items()}
    out["day"] = out["at"] // DAY
    return out


def _cumulative(act_lead: np.ndarray, act_at: np.ndarray, flag: np.ndarray, lead: np.ndarray, until: np.ndarray):
    """Per (lead, until): how many flagged activities of the lead happened before ``until``."""
    key = act_lead.astype(np.int64) * (1 << 40) + act_at
    order = np.argsort(key, kind="stable")
    key, f = key[order], flag[order].astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(f)])
    q = lead.astype(np.int64) * (1 << 40) + until
    lo = np.searchsorted(key, lead.astype(np.int64) * (1 << 40), side="left")
    hi = np.searchsorted(key, q, side="left")
    return cum[hi] - cum[lo]


def _last_before(act_lead, act_at, lead, until):
    key = act_lead.astype(np.int64) * (1 << 40) + act_at
    order = np.argsort(key, kind="stable")
    key_s, at_s = key[order], act_at[order]
    pos = np.searchsorted(key_s, lead.astype(np.int64) * (1 << 40) + until, side="left") - 1
    ok = (pos >= 0) & (key_s[np.maximum(pos, 0)] >= lead.astype(np.int64) * (1 << 40))
    return np.where(ok, at_s[np.maximum(pos, 0)], NULL)


def emit_leads(w, sinks) -> None:
    from lakehouse.synth.psa_entities import CLIENT_ID

    tl, L = w.tl, w.leads
    act = w.extra["activities"]
    n = L.n
    cday = L.created // DAY
    ev_lead, ev_day = [np.arange(n)], [cday]
    ev_lead.append(np.arange(n)), ev_day.append(L.working_day)
    q = np.flatnonzero(L.qualified)
    ev_lead.append(q), ev_day.append(L.qualified_day[q])
    ev_lead.append(np.arange(n)), ev_day.append(L.final_day)
    # month-end refreshes while open
    months = np.arange(-4, tl.n_months)
    ends = tl.last_day(months)
    for e in ends:
        open_ = np.flatnonzero((cday < e) & (L.final_day > e))
        ev_lead.append(open_), ev_day.append(np.full(len(open_), e))
    lead = np.concatenate(ev_lead).astype(np.int64)
    day = np.concatenate(ev_day).astype(np.int64)
    keep = (day >= 0) | (L.final_day[lead] >= 0)
    lead, day = lead[keep], np.maximum(day[keep], 0)
    until = (day + 1) * DAY
    status = np.where(day >= L.final_day[lead], L.final_status[lead],
                      np.where((L.qualified_day[lead] != NULL) & (day >= L.qualified_day[lead]), 2,
                               np.where(day >= L.working_day[lead], 1, 0)))
    frac = np.clip((day - cday[lead] + 1) / np.maximum(L.final_day[lead] - cday[lead] + 1, 1), 0, 1)
    is_out = act["kind"] == 0
    opens = _cumulative(act["lead"], act["at"], is_out & act["opened"], lead, until)
    clicks = _cumulative(act["lead"], act["at"], is_out & act["clicked"], lead, until)
    calls = _cumulative(act["lead"], act["at"], act["kind"] == 2, lead, until)
    last = _last_before(act["lead"], act["at"], lead, until)
    updated = np.maximum(L.created[lead], day * DAY + 22 * 3600)
    r = Rows()
    r.add(_day=day, _order=lead, lead_id=ids(*LEAD_ID, lead + 1).to_numpy(zero_copy_only=False),
          company_name=L.company[lead], industry=np.asarray(names.INDUSTRIES, dtype=object)[L.industry[lead]],
          employees=L.employees[lead], endpoints=L.endpoints[lead], locations=L.locations[lead],
          compliance_needs=np.asarray(COMPLIANCE, dtype=object)[L.compliance[lead]],
          current_it_model=np.asarray(MODELS, dtype=object)[L.model[lead]],
          lead_source=np.asarray(SOURCES, dtype=object)[L.source[lead]],
          referred_by_client_id=ids(*CLIENT_ID, np.where(L.referred_by[lead] >= 0, L.referred_by[lead] + 1, -1)
                                    ).to_numpy(zero_copy_only=False),
          owner=L.rep_names[L.owner[lead]], status=np.asarray(STATUSES, dtype=object)[status], email_opens=opens,
          email_clicks=clicks, web_visits=np.floor(L.web_visits[lead] * frac).astype(np.int64),
          form_submissions=np.floor(L.forms[lead] * frac).astype(np.int64), calls=calls,
          meetings=np.floor(L.meetings[lead] * frac).astype(np.int64),
          assessment_done=(L.assessment_day[lead] != NULL) & (day >= L.assessment_day[lead]),
          last_engagement_at=last, created_at=L.created[lead],
          converted_at=np.where(L.converted[lead] & (status == 5), L.final_day[lead] * DAY + 21 * 3600, NULL),
          updated_at=updated)
    r.emit(sinks["leads"], "lead_id", order="_order")
    _emit_opportunities(w, sinks)


def _emit_opportunities(w, sinks) -> None:
    L, act = w.leads, w.extra["activities"]
    q = np.flatnonzero(L.qualified)
    opp_of_lead = np.full(L.n, -1)
    opp_of_lead[q] = np.arange(len(q))
    w.extra["opp_of_lead"] = opp_of_lead
    lead, stage, day = [], [], []
    for s in range(6):
        has = L.stage_days[q, s] != NULL
        lead.append(q[has]), stage.append(np.full(has.sum(), s)), day.append(L.stage_days[q[has], s])
    lost = q[L.lost_day[q] != NULL]
    lead.append(lost), stage.append(np.full(len(lost), 6)), day.append(L.lost_day[lost])
    lead, stage, day = (np.concatenate(x).astype(np.int64) for x in (lead, stage, day))
    keep = day >= 0
    lead, stage, day = lead[keep], stage[keep], day[keep]
    created = L.stage_days[lead, 0] * DAY + 20 * 3600
    proposed = L.stage_days[lead, 3]
    expected = np.where(stage >= 5, day, np.where(stage == 4, day + 10,
                                                 np.where(stage == 3, proposed + 30, L.stage_days[lead, 0] + 75)))
    confidence = np.array([0, 0, 1, 1, 2, 3, 0])[stage]
    closed = np.where(stage >= 5, day * DAY + 21 * 3600, NULL)
    last = _last_before(act["lead"], act["at"], lead, (day + 1) * DAY)
    rng = stream(w.seed, "opportunities")
    lost_to = np.where((stage == 6) & (L.loss_reason[lead] == 1), rng.integers(0, len(COMPETITORS), len(lead)), -1)
    r = Rows()
    oid = opp_of_lead[lead]
    r.add(_day=day, _order=oid, opportunity_id=ids(*OPP_ID, oid + 1).to_numpy(zero_copy_only=False),
          lead_id=ids(*LEAD_ID, lead + 1).to_numpy(zero_copy_only=False),
          opportunity_name=np.asarray([f"Managed IT - {x}" for x in L.company[lead]], dtype=object),
          opportunity_type="new_logo", stage=np.asarray(STAGES, dtype=object)[stage],
          confidence=np.asarray(("low", "medium", "high", "committed"), dtype=object)[confidence],
          mrr=L.mrr[lead], one_time_value=L.one_time[lead], expected_close_date=expected,
          owner=L.rep_names[L.owner[lead]], created_at=created, last_activity_at=last, closed_at=closed,
          loss_reason=np.where(stage == 6, np.asarray(LOSS, dtype=object)[np.maximum(L.loss_reason[lead], 0)], None),
          lost_to=np.where(lost_to >= 0, np.asarray(COMPETITORS, dtype=object)[np.maximum(lost_to, 0)], None),
          updated_at=np.maximum(created, day * DAY + 21 * 3600 + 60))
    r.emit(sinks["opportunities"], "opportunity_id", order="_order")


def simulate_month(w, m: int, sinks, book) -> None:
    """Activities happening in month m."""
    tl, act, L = w.tl, w.extra["activities"], w.leads
    d0, d1 = tl.month_range(m)
    lo, hi = np.searchsorted(act["day"], [d0, d1])
    if hi <= lo:
        return
    a = {k: v[lo:hi] for k, v in act.items()}
    idx = np.arange(lo, hi)
    lead = a["lead"]
    opp = w.extra["opp_of_lead"][lead]
    has_opp = (opp >= 0) & (L.stage_days[lead, 0] != NULL) & (a["day"] >= L.stage_days[lead, 0])
    kind = a["kind"]
    email_subj = np.asarray(EMAIL_SUBJECTS, dtype=object)[a["subject"] % len(EMAIL_SUBJECTS)]
    call_subj = np.asarray(CALL_SUBJECTS, dtype=object)[a["subject"] % len(CALL_SUBJECTS)]
    sinks["activities"].add(a["day"], a["at"], activity_id=ids(*ACTIVITY_ID, idx + 1),
                            activity_type=np.where(kind == 2, "call", "email").astype(object),
                            direction=np.where(kind == 1, "inbound", "outbound").astype(object),
                            lead_id=ids(*LEAD_ID, lead + 1),
                            opportunity_id=ids(*OPP_ID, np.where(has_opp, opp + 1, -1)),
                            owner=L.rep_names[L.owner[lead]], occurred_at=a["at"],
                            subject=np.where(kind == 2, call_subj, email_subj), duration_seconds=a["duration"],
                            outcome=pick(OUTCOMES, a["outcome"]),
                            opened=np.where(kind == 0, a["opened"].astype(np.int8), -1),
                            clicked=np.where(kind == 0, a["clicked"].astype(np.int8), -1))
