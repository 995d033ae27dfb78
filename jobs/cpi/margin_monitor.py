"""The margin monitor: one ``client.profitability.changed`` *episode* per client in margin trouble, with an
event when it opens, one each time it worsens, and one when it closes; a month that does none of these
raises nothing.

A month is judged once, on its closing day (last day + ``cpi.month_close_days``, when late invoices and
time entries are in), so an event's business date is that day and the dispatcher routes it in that day's
run. Rules (every threshold from ``[cpi]``, DOMAIN.md section 1 [R21]; section 7: the Resource agent
consumes the events):

* **opened**: a client without an open episode has a closed month with a finding: its margin moved down a
  tier by more than ``cpi.tier_hysteresis_pp`` under the bound it crossed (``tier_down``; a margin wobbling
  around a bound does not flap), it fell by more than ``cpi.margin_drop_pp`` points from the month before
  (``margin_drop``), or it has been ``cpi.problem_months`` months or more under the lowest tier
  (``problem_client``). The episode remembers the *bound it fell under*: the lower bound of the tier the
  client held the month before (the lowest bound when it was in the lowest tier already), or, after a
  margin drop, the margin before the drop less ``cpi.margin_drop_pp`` when that is higher.
* **worsened**: in an open episode, the margin falls into a tier below the worst one announced (by more than
  ``cpi.tier_hysteresis_pp`` under its bound; ``tier_down``), the client becomes a problem client
  (``problem_client``, severity critical), or the margin falls ``cpi.episode_worsen_pp`` points or more
  under the margin of the episode's last event (``margin_drop``).
* **closed**: the margin has been at or above the bound it fell under plus ``cpi.episode_close_hysteresis_pp``
  for ``cpi.episode_close_months`` consecutive closed months (reason ``recovered``, severity info).

The state of the open episodes comes from the lake, never from memory: the monitor's own earlier events in
``events.outbox`` (the episode's last event names its bound, worst tier and margin) and the margin report of
the months of a recovery streak. Each month of a run is judged on the events before its closing day (the
lake's, outside the days this run replaces, and the ones this run made for earlier months), so a day run
alone, a rerun and a backfill give the same events. Ids are deterministic: the event id hashes (type,
client, month, ``margin_trouble:<state>``), the episode id (type, client, ``margin_trouble``, opening day),
and this stage replaces its own outbox partitions for the run's days, so nothing is ever duplicated.

Each event carries its evidence: the metric, its value, the threshold and the comparison of its main
finding (all the month's findings under ``findings``), the rows it was computed from (client and month keys
of the profitability and report tables), and the main drivers: what changed most from the month before,
ranked by its effect on profit (labour cost, addition cost, billed revenue), then the operational causes
(labour hours, reactive hours, tickets, effective hourly rate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from jobs.cpi.margin_report import TABLE as REPORT
from jobs.cpi.profitability import CLIENT_TABLE
from lakehouse.events import episode_id, make_event
from lakehouse.transforms import add_months, month_of

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jobs.cpi.settings import CpiSettings
    from lakehouse.context import RunContext

EVENT_TYPE = "client.profitability.changed"
SOURCE = "cpi.margin_monitor"
OUTBOX = "events.outbox"
CONDITION = "margin_trouble"
#: the main reason of a month with several findings, most serious first
PRIORITY = ("problem_client", "tier_down", "margin_drop")
STATE_ORDER = {"opened": 0, "worsened": 1, "closed": 2}
#: (factor, column, effect on profit: +1 when a rise adds profit, -1 when it costs, 0 operational)
DRIVERS = (("labour_cost", "labour_cost", -1), ("addition_cost", "addition_cost", -1), ("billed", "billed", 1),
           ("labour_hours", "labour_hours", 0), ("reactive_hours", "reactive_hours", 0), ("tickets", "tickets", 0),
           ("effective_hourly_rate", "effective_hourly_rate", 0))


@dataclass(frozen=True)
class Episode:
    """An open margin-trouble episode of one client, as its events in the lake describe it."""

    client_id: str
    id: str
    opened: date           # the closing day of the month it opened on
    opened_period: str     # that month
    bound: float           # the margin (%) it fell under
    worst_rank: int        # the worst tier announced (0 = the best tier)
    margin: float          # the margin of its last event
    problem: bool          # announced as a problem client
    last_period: str       # the month of its last event


def closing_months(days: list[date], close_days: int) -> dict[str, date]:
    """Months that close on one of ``days`` → their closing day."""
    out = {}
    for d in days:
        last = d - timedelta(days=close_days)
        if (last + timedelta(days=1)).day == 1:
            out[month_of(last)] = d
    return out


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


def drivers(before: dict[str, Any] | None, after: dict[str, Any], cfg: CpiSettings, top: int = 4) -> list[dict]:
    """What changed most between two profitability rows of a client (see the module docstring)."""
    if before is None:
        return []
    found = []
    for factor, col, sign in DRIVERS:
        b, a = _num(before.get(col)), _num(after.get(col))
        if b is None or a is None or a == b:
            continue
        pct = (a - b) / abs(b) * 100 if b else None
        if pct is not None and abs(pct) < cfg.driver_min_change_pct:
            continue
        change = f"{pct:+.0f}%" if pct is not None else f"{a - b:+.2f} (from 0)"
        impact = abs(a - b) if sign and (a - b) * sign < 0 else 0.0  # money that cost profit this month
        found.append(({"factor": factor, "change": change, "before": round(b, 2), "after": round(a, 2)},
                      sign != 0, impact))
    money = sorted((d for d in found if d[1] and d[2] > 0), key=lambda d: -d[2])
    other = [d for d in found if not (d[1] and d[2] > 0)]
    return [d[0] for d in (money + other)[:top]]


# ---- findings ------------------------------------------------------------------------------------------------
def _finding(reason: str, metric: str, value: float | None, threshold: float, op: str) -> dict[str, Any]:
    return {"reason": reason, "metric": metric, "value": value, "threshold": threshold, "comparison": op}


def _rank(cfg: CpiSettings, tier: str | None) -> int | None:
    return cfg.tier_names.index(tier) if tier in cfg.tier_names else None


def _tier_floor(cfg: CpiSettings, tier: str | None) -> float:
    """The lower bound of a tier (the lowest bound for the lowest tier or no tier)."""
    rank = _rank(cfg, tier)
    return cfg.tier_bounds[rank] if rank is not None and rank < len(cfg.tier_bounds) else cfg.lowest_bound


def _problem(r: Mapping[str, Any], cfg: CpiSettings) -> bool:
    return int(r.get("months_below_lowest") or 0) >= cfg.problem_months


def opening_findings(r: Mapping[str, Any], cfg: CpiSettings) -> list[dict[str, Any]]:
    """What opens an episode in a report row of a client without one (most serious first)."""
    margin = _num(r["margin_pct"])
    found = []
    if _problem(r, cfg):
        found.append(_finding("problem_client", "margin_pct", margin, cfg.lowest_bound, "<"))
    if r.get("tier_change") == "down":
        bound = _tier_floor(cfg, r.get("prev_tier"))
        if margin < bound - cfg.tier_hysteresis_pp:
            found.append(_finding("tier_down", "margin_pct", margin, bound, "<"))
    change = _num(r.get("margin_change_pp"))
    if change is not None and change <= -cfg.margin_drop_pp:
        found.append(_finding("margin_drop", "margin_change_pp", change, -cfg.margin_drop_pp, "<="))
    return found


def worsening_findings(r: Mapping[str, Any], ep: Episode, cfg: CpiSettings) -> list[dict[str, Any]]:
    """What worsens an open episode in a report row of its client (most serious first)."""
    margin = _num(r["margin_pct"])
    found = []
    if _problem(r, cfg) and not ep.problem:
        found.append(_finding("problem_client", "margin_pct", margin, cfg.lowest_bound, "<"))
    rank = _rank(cfg, r.get("margin_tier"))
    if rank is not None and rank > ep.worst_rank:
        bound = cfg.tier_bounds[ep.worst_rank]  # the lower bound of the worst tier announced
        if margin < bound - cfg.tier_hysteresis_pp:
            found.append(_finding("tier_down", "margin_pct", margin, bound, "<"))
    if margin <= ep.margin - cfg.episode_worsen_pp:
        found.append(_finding("margin_drop", "margin_pct", margin, round(ep.margin - cfg.episode_worsen_pp, 2),
                              "<="))
    return found


def fell_under(r: Mapping[str, Any], found: list[dict[str, Any]], cfg: CpiSettings) -> float:
    """The bound an opening month fell under (see the module docstring)."""
    bound = _tier_floor(cfg, r.get("prev_tier"))
    before = _num(r.get("prev_margin_pct"))
    if before is not None and any(f["reason"] == "margin_drop" for f in found):
        bound = max(bound, before - cfg.margin_drop_pp)
    return round(bound, 2)


def recovered(r: Mapping[str, Any] | None, ep: Episode, cfg: CpiSettings) -> bool:
    margin = None if r is None or r.get("margin_tier") is None else _num(r.get("margin_pct"))
    return margin is not None and margin >= ep.bound + cfg.episode_close_hysteresis_pp and not _problem(r, cfg)


def recovery_streak(rows: Mapping[tuple[str, str], Mapping[str, Any]], ep: Episode, month: str,
                    cfg: CpiSettings) -> list[str]:
    """The months up to ``month``, after the episode's last event, of the recovery running then (latest
    first; empty when ``month`` itself is not recovered)."""
    out: list[str] = []
    m = month
    while m > ep.last_period and len(out) < cfg.episode_close_months and recovered(rows.get((ep.client_id, m)),
                                                                                    ep, cfg):
        out.append(m)
        m = add_months(m, -1)
    return out


# ---- the episodes' state, from their events ------------------------------------------------------------------
def open_episodes(events: Iterable[Mapping[str, Any]], cfg: CpiSettings) -> dict[str, Episode]:
    """Client → its open episode, from the monitor's events (envelopes). An episode is open when its latest
    event did not close it; events without an episode (written before the monitor had episodes) are
    ignored."""
    by_episode: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        ep = e.get("episode") or {}
        if ep.get("id") and "recovery_bound_pct" in (e.get("data") or {}):
            by_episode.setdefault(ep["id"], []).append(e)
    out: dict[str, Episode] = {}
    for eid, evs in by_episode.items():
        evs = sorted(evs, key=lambda e: (e["time"], STATE_ORDER.get(e["episode"]["state"], 0)))
        last = evs[-1]
        if last["episode"]["state"] == "closed":
            continue
        d = last["data"]
        worst = _rank(cfg, d.get("worst_tier"))
        ep = Episode(client_id=d["client_id"], id=eid, opened=date.fromisoformat(last["episode"]["opened"]),
                     opened_period=d.get("episode_opened_period") or evs[0]["data"]["period"],
                     bound=float(d["recovery_bound_pct"]),
                     worst_rank=worst if worst is not None else len(cfg.tier_names) - 1,
                     margin=float(d["new_margin_pct"]),
                     problem=any("problem_client" in (e["data"].get("reasons") or [e["data"]["reason"]])
                                 for e in evs),
                     last_period=d["period"])
        if ep.client_id not in out or ep.opened > out[ep.client_id].opened:
            out[ep.client_id] = ep
    return out


# ---- events --------------------------------------------------------------------------------------------------
def _event(r: Mapping[str, Any], state: str, ep: Episode, found: list[dict[str, Any]], day: date,
           profit: Mapping[tuple[str, str], Mapping[str, Any]], cfg: CpiSettings,
           streak: list[str] | None = None) -> dict[str, Any]:
    m, cid = r["month"], r["client_id"]
    prev_m = add_months(m, -1)
    now, before = profit.get((cid, m), {}), profit.get((cid, prev_m))
    sources = [{"dataset": CLIENT_TABLE, "keys": {"client_id": cid, "month": m}}]
    if before is not None:
        sources.append({"dataset": CLIENT_TABLE, "keys": {"client_id": cid, "month": prev_m}})
    sources += [{"dataset": REPORT, "keys": {"client_id": cid, "month": x}} for x in sorted(streak or [m])]
    margin = _num(r["margin_pct"])
    data = {"client_id": cid, "period": m, "old_margin_pct": _num(r.get("prev_margin_pct")),
            "new_margin_pct": margin, "old_tier": r.get("prev_tier"), "new_tier": r["margin_tier"],
            "consecutive_months_below": int(r.get("months_below_lowest") or 0), "state": state,
            "episode_opened_period": ep.opened_period, "recovery_bound_pct": ep.bound,
            "worst_tier": cfg.tier_names[ep.worst_rank]}
    if state == "closed":
        threshold = round(ep.bound + cfg.episode_close_hysteresis_pp, 2)
        data.update(reason="recovered", reasons=[], months_recovered=len(streak or []))
        main = _finding("recovered", "margin_pct", margin, threshold, ">=")
        severity = "info"
    else:
        main = found[0]
        data.update(reason=main["reason"], reasons=[f["reason"] for f in found])
        severity = "critical" if ep.problem or r["margin_tier"] == cfg.tier_names[-1] else "warning"
    if r.get("suggested_action"):
        data["suggested_action"] = r["suggested_action"]
    evidence = {"metric": main["metric"], "value": main["value"], "threshold": main["threshold"],
                "comparison": main["comparison"], "source_rows": sources, "drivers": drivers(before, now, cfg)}
    if state != "closed":
        evidence["findings"] = found
    episode = {"id": ep.id, "state": state, "opened": ep.opened.isoformat()}
    if state == "closed":
        episode["closed"] = day.isoformat()
    return make_event(EVENT_TYPE, SOURCE, f"client:{cid}", day, m, f"{CONDITION}:{state}", data, evidence,
                      severity=severity, episode=episode)


def _judge(r: Mapping[str, Any], ep: Episode | None, day: date, rows: Mapping[tuple[str, str], Mapping[str, Any]],
           profit: Mapping[tuple[str, str], Mapping[str, Any]], cfg: CpiSettings) -> dict[str, Any] | None:
    """The event of one client's closed month, given its open episode (None: the month raises nothing)."""
    m, cid = r["month"], r["client_id"]
    margin = _num(r["margin_pct"])
    rank = _rank(cfg, r["margin_tier"])
    if ep is None:
        found = opening_findings(r, cfg)
        if not found:
            return None
        ep = Episode(client_id=cid, id=episode_id(EVENT_TYPE, f"client:{cid}", CONDITION, day), opened=day,
                     opened_period=m, bound=fell_under(r, found, cfg),
                     worst_rank=rank if rank is not None else len(cfg.tier_names) - 1, margin=margin,
                     problem=_problem(r, cfg), last_period=m)
        return _event(r, "opened", ep, found, day, profit, cfg)
    found = worsening_findings(r, ep, cfg)
    if found:
        ep = Episode(client_id=cid, id=ep.id, opened=ep.opened, opened_period=ep.opened_period, bound=ep.bound,
                     worst_rank=max(ep.worst_rank, rank if rank is not None else ep.worst_rank), margin=margin,
                     problem=ep.problem or _problem(r, cfg), last_period=m)
        return _event(r, "worsened", ep, found, day, profit, cfg)
    streak = recovery_streak(rows, ep, m, cfg)
    if len(streak) >= cfg.episode_close_months:
        return _event(r, "closed", ep, [], day, profit, cfg, streak)
    return None


def find_events(report: pd.DataFrame, profit: pd.DataFrame, months: dict[str, date], cfg: CpiSettings,
                previous: Iterable[Mapping[str, Any]] = ()) -> list[dict]:
    """Events for the report rows of the closing ``months`` (pure: frames in, validated events out).

    ``report`` holds the months judged and the ``cpi.episode_close_months - 1`` months before each (a recovery
    streak reaches back into them); ``previous``: the monitor's earlier events (envelopes) outside the days
    judged now. Each month is judged on the episodes its earlier events leave open: those of ``previous``
    dated before its closing day, and those found here for the months before it."""
    keyed = {(r["client_id"], r["month"]): r for r in profit.to_dict("records")}
    rows = {(r["client_id"], r["month"]): r for r in report.to_dict("records")}
    previous = list(previous)
    events: list[dict] = []
    for m in sorted(months):
        day = months[m]
        episodes = open_episodes([e for e in previous if e["time"] < day.isoformat()] + events, cfg)
        for (cid, month), r in sorted(rows.items()):
            if month != m or r.get("margin_tier") is None or _num(r.get("margin_pct")) is None:
                continue
            event = _judge(r, episodes.get(cid), day, rows, keyed, cfg)
            if event is not None:
                events.append(event)
    return events


def run(ctx: RunContext) -> None:
    """Emit the client.profitability.changed episode events of the months closing on the run's days (a month
    is judged once, on its closing day: the events of past days are what was announced then, and a changed
    threshold judges the months that close from now on)."""
    import json

    from lakehouse.lake import Range

    cfg: CpiSettings = ctx.config
    months = closing_months(ctx.dates, cfg.month_close_days)
    events: list[dict] = []
    if months:
        back = range(cfg.episode_close_months)
        report = ctx.read_pandas(REPORT, {"month": sorted({add_months(m, -i) for m in months for i in back})})
        profit = ctx.read_pandas(CLIENT_TABLE, {"month": sorted(set(months) | {add_months(m, -1) for m in months})})
        # the monitor's own earlier events (the stage writes the outbox, so it may read it): the open episodes
        mine = ctx.read_arrow(OUTBOX, {"event_type": EVENT_TYPE, "dt": Range(None, ctx.end.isoformat())})
        replaced = set(ctx.days)
        previous = [json.loads(r["envelope"]) for r in mine.select(["envelope", "dt"]).to_pylist()
                    if str(r["dt"]) not in replaced]
        events = find_events(report, profit, months, cfg, previous)
    states = {s: sum(1 for e in events if e["episode"]["state"] == s) for s in STATE_ORDER}
    ctx.count(OUTBOX).notes.append(f"{len(events)} {EVENT_TYPE} event(s) for month(s) {sorted(months) or '-'}: "
                                   + ", ".join(f"{n} {s}" for s, n in states.items()))
    ctx.emit(EVENT_TYPE, events)
