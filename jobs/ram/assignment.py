"""Technician assignment for a day's tickets: the greedy baseline and the CP-SAT optimiser, on one model of
the day.

**The day** (:class:`DayProblem`). Time is counted in minutes from the shift start of the day
(``ram.workday_start_utc_hour``). Each technician at work has a capacity (scheduled minus PTO minutes, or the
hours they really worked per day lately when more, :func:`recent_hours`) and a backlog (minutes of work
already queued); each ticket has a release (its creation, 0 if earlier), an
estimated effort (:func:`jobs.ram.data.effort_estimates`) and, for onsite work, the round trip from the
technician's home (haversine × ``ram.road_factor`` at ``ram.speed_kmh``). A technician may take a ticket
only with the required skill at the required level or above (hard). Work planned past a technician's shift
spills to the next day's shift: its wall-clock end jumps overnight, which the SLA gates see.

**The cost** both planners are judged on, and the optimiser minimises (weights in ``[ram]``):

* SLA-breach risk: for each ticket, the elapsed share of its resolution target at the planned end against the
  70 / 90 / 110 % gates of Alga PSA's escalation policy [R2] and the breach itself at 100 %
  (``ram.sla_gates_pct``); past a gate costs its ``ram.gate_weights`` (they add up);
* skill gap: levels above the one required × estimated hours × ``ram.skill_gap_weight`` (senior time on easy
  work is a margin leak [R18]);
* travel: km driven to onsite work × ``ram.travel_weight_per_km``;
* load imbalance: the points by which each technician's planned load, in % of capacity, exceeds the team's
  mean × ``ram.imbalance_weight`` (the spread max − min is reported too);
* a ticket left unassigned (nobody qualified at work) costs ``ram.unassigned_weight``.

Both planners work in **dispatch rounds** (:func:`rounds`): the tickets waiting at the shift start, then those
created in each ``ram.assign_window_minutes``; a round knows only its own tickets and what earlier rounds
committed. **Baseline** (:func:`greedy`): earliest SLA due first, each ticket to the least-loaded qualified
technician (load in % of capacity), appended to their queue (DOMAIN.md section 3). **Optimiser**
(:func:`solve`): per round a CP-SAT model of the cost above over optional intervals per (ticket, candidate
technician), with the technicians' unstarted queues re-sequenced; the baseline's picks are its hint. With one
worker, a fixed seed and a deterministic time limit per round (``ram.assign_deterministic_limit``) the same
day gives the same plan.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from jobs.ram import data

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from jobs.ram.settings import RamSettings
    from lakehouse.context import RunContext

DAY_MIN = 24 * 60
#: Under the first gate, then past each of ``ram.sla_gates_pct`` (default 70 / 90 / 100 / 110 %).
GATE_NAMES = ("ok", "watch", "escalate", "breach", "overdue")
TABLE = "analytics.ram_assignments"


@dataclass
class PlanTech:
    technician_id: str
    role: str
    skills: dict[str, int]
    lat: float
    lon: float
    capacity_min: int
    backlog_min: int = 0

    def level(self, skill: str) -> int:
        return self.skills.get(skill, 0)


@dataclass
class Job:
    ticket: data.Ticket
    release_min: int
    est_min: int

    @property
    def ticket_id(self) -> str:
        return self.ticket.ticket_id


@dataclass
class DayProblem:
    day: date
    shift_start: datetime
    techs: list[PlanTech]
    jobs: list[Job]
    cfg: Any

    def __post_init__(self) -> None:
        self.eligible: list[list[int]] = [
            [k for k, t in enumerate(self.techs) if t.capacity_min > 0 and t.level(j.ticket.skill) >= j.ticket.level]
            for j in self.jobs]
        self._km: dict[tuple[int, int], float] = {}

    # ---- per (job, technician) ----------------------------------------------------------------------------
    def travel_km(self, i: int, k: int) -> float:
        """Round trip home → site → home for onsite work (0 for remote work or a site without coordinates)."""
        key = (i, k)
        if key not in self._km:
            tk, t = self.jobs[i].ticket, self.techs[k]
            if not tk.onsite or tk.lat is None or tk.lon is None:
                self._km[key] = 0.0
            else:
                self._km[key] = 2 * float(data.road_km(t.lat, t.lon, tk.lat, tk.lon, self.cfg.road_factor))
        return self._km[key]

    def duration(self, i: int, k: int) -> int:
        return self.jobs[i].est_min + data.drive_minutes(self.travel_km(i, k), self.cfg.speed_kmh)

    def release(self, i: int, k: int) -> int:
        """Work-clock minute of technician k from which job i can be worked (its creation; after the shift:
        the next shift's start)."""
        return max(0, self.work_deadline(k, self.jobs[i].release_min))

    def gap(self, i: int, k: int) -> int:
        return max(0, self.techs[k].level(self.jobs[i].ticket.skill) - self.jobs[i].ticket.level)

    # ---- time -----------------------------------------------------------------------------------------------
    def minutes(self, at: datetime) -> int:
        return math.floor((at - self.shift_start).total_seconds() / 60)

    def wall(self, k: int, work_min: int) -> int:
        """Wall-clock minute (from the shift start) at which technician k reaches ``work_min`` minutes of work:
        past the shift the work resumes at the next day's shift start."""
        cap = self.techs[k].capacity_min
        if work_min <= cap or cap <= 0:
            return work_min
        d = (work_min - 1) // cap            # the shift (0 = today) in which that minute is worked
        return d * DAY_MIN + work_min - d * cap

    def work_deadline(self, k: int, wall_min: int) -> int:
        """Largest work-clock minute whose wall time is still <= ``wall_min`` (inverse of :meth:`wall`)."""
        cap = self.techs[k].capacity_min
        if cap <= 0 or wall_min <= cap:
            return wall_min
        day, rest = divmod(wall_min, DAY_MIN)
        return day * cap + min(rest, cap)

    def gate_minutes(self, i: int) -> list[int]:
        """Wall-clock minute of each SLA gate of job i (created + gate % × resolution target)."""
        tk = self.jobs[i].ticket
        created = self.minutes(tk.created_at)
        return [created + math.floor(g / 100.0 * tk.sla_minutes) for g in self.cfg.sla_gates_pct]

    def gate_of(self, i: int, end_wall_min: int) -> int:
        """0 (ok) .. 3 (past the last gate) for a planned end."""
        return sum(end_wall_min > g for g in self.gate_minutes(i))


@dataclass
class Plan:
    """Who does what, when (work-clock minutes), and what it costs."""

    policy: str
    assignment: dict[int, int]                      # job index -> technician index
    start: dict[int, int]                           # job index -> work-clock start
    status: str = ""
    seconds: float = 0.0
    objective: float | None = None
    cost: dict[str, float] = field(default_factory=dict)

    def order(self, k: int) -> list[int]:
        return sorted((i for i, kk in self.assignment.items() if kk == k), key=lambda i: (self.start[i], i))


# ---- evaluation (one ruler for both planners) ---------------------------------------------------------------------
def evaluate(p: DayProblem, plan: Plan) -> dict[str, float]:
    """The cost terms of a plan (the optimiser's objective, in the same units)."""
    w = p.cfg
    gates = [0] * (len(w.sla_gates_pct) + 1)
    risk = gap = km = spill = 0.0
    for i, k in plan.assignment.items():
        end = plan.start[i] + p.duration(i, k)
        g = p.gate_of(i, p.wall(k, end))
        gates[g] += 1
        risk += sum(w.gate_weights[:g])
        gap += p.gap(i, k) * p.jobs[i].est_min / 60.0
        km += p.travel_km(i, k)
    loads, caps = [], []
    for k, t in enumerate(p.techs):
        if t.capacity_min <= 0:
            continue
        mine = plan.order(k)
        load = t.backlog_min + sum(p.duration(i, k) for i in mine)
        loads.append(load)
        caps.append(t.capacity_min)
        makespan = max([plan.start[i] + p.duration(i, k) for i in mine] + [t.backlog_min])
        spill += max(0, makespan - t.capacity_min) / 60.0
    pct = [100.0 * lo / c for lo, c in zip(loads, caps, strict=True)]
    mean = 100.0 * sum(loads) / sum(caps) if caps else 0.0
    above = sum(max(0.0, x - mean) for x in pct)
    unassigned = len(p.jobs) - len(plan.assignment)
    total = (risk + w.skill_gap_weight * gap + w.travel_weight_per_km * km + w.imbalance_weight * above
             + w.unassigned_weight * unassigned)
    return {"total": round(total, 3), "sla_risk": risk, **dict(zip(GATE_NAMES, gates, strict=False)),
            "breached": sum(gates[3:]), "skill_gap_hours": round(gap, 2), "travel_km": round(km, 2),
            "load_above_mean_pct": round(above, 2), "load_spread_pct": round(max(pct) - min(pct), 2) if pct else 0.0,
            "spill_hours": round(spill, 2), "unassigned": unassigned}


# ---- dispatch rounds ------------------------------------------------------------------------------------------------
def rounds(p: DayProblem) -> list[list[int]]:
    """The dispatch rounds of the day: the tickets waiting at the shift start, then those created in each
    ``ram.assign_window_minutes`` of the shift, then those created after it (worked from tomorrow). A round
    is planned knowing only its own tickets and what earlier rounds committed, as a dispatcher would."""
    size = int(p.cfg.assign_window_minutes)
    shift = max([t.capacity_min for t in p.techs] + [0])
    groups: dict[int, list[int]] = {}
    for i, j in enumerate(p.jobs):
        r = j.release_min
        key = 0 if r <= 0 else (r // size + 1 if r < shift else shift // size + 2)
        groups.setdefault(key, []).append(i)
    return [sorted(groups[k], key=lambda i: edd_key(p, i)) for k in sorted(groups)]


def edd_key(p: DayProblem, i: int) -> tuple:
    """Earliest SLA due first (then created, then id)."""
    tk = p.jobs[i].ticket
    return (tk.resolution_due_at, tk.created_at, tk.ticket_id)


class Board:
    """What the rounds so far committed: each technician's next free work-clock minute and planned load."""

    def __init__(self, p: DayProblem):
        self.p = p
        self.free = [t.backlog_min for t in p.techs]
        self.load = [t.backlog_min for t in p.techs]

    def place(self, plan: Plan, i: int, k: int, start: int | None = None) -> None:
        start = max(self.free[k], self.p.release(i, k)) if start is None else start
        plan.assignment[i], plan.start[i] = k, start
        self.free[k] = max(self.free[k], start + self.p.duration(i, k))
        self.load[k] += self.p.duration(i, k)


# ---- baseline -------------------------------------------------------------------------------------------------------
def greedy(p: DayProblem) -> Plan:
    """Least-loaded qualified technician, earliest SLA due first (DOMAIN.md section 3's baseline), round by
    round; load is planned minutes in % of the technician's capacity."""
    t0 = time.perf_counter()
    board = Board(p)
    plan = Plan("baseline", {}, {})
    for batch in rounds(p):
        for i in batch:
            options = p.eligible[i]
            if options:
                board.place(plan, i, min(options, key=lambda k: (board.load[k] / p.techs[k].capacity_min,
                                                                 p.techs[k].technician_id)))
    plan.status, plan.seconds = "HEURISTIC", round(time.perf_counter() - t0, 3)
    plan.cost = evaluate(p, plan)
    return plan


def schedule_in_order(p: DayProblem, assignment: dict[int, int], policy: str, order: Sequence[int] | None = None
                      ) -> Plan:
    """A plan from an assignment: each technician works their tickets in ``order`` (default: round by round,
    earliest due first)."""
    plan = Plan(policy, {}, {})
    board = Board(p)
    for i in (order if order is not None else [i for r in rounds(p) for i in r]):
        if i in assignment:
            board.place(plan, i, assignment[i])
    plan.cost = evaluate(p, plan)
    return plan


# ---- the optimiser --------------------------------------------------------------------------------------------------
SCALE = 100  # objective units per cost unit (CP-SAT needs integers)


def candidates(p: DayProblem, i: int, limit: int, keep: int | None = None,
               free: Sequence[int] | None = None) -> list[int]:
    """The qualified technicians the optimiser weighs for job i: the ``limit`` cheapest in skill gap and
    travel, the ``limit`` who can start it soonest (``free``: each technician's next free work-clock minute),
    and ``keep`` (the baseline's pick for the round, so the baseline stays a solution)."""
    w = p.cfg
    cheap = sorted(p.eligible[i], key=lambda k: (w.skill_gap_weight * p.gap(i, k) * p.jobs[i].est_min / 60.0
                                                 + w.travel_weight_per_km * p.travel_km(i, k),
                                                 p.techs[k].technician_id))
    chosen = set(cheap[:limit])
    if free is not None:
        soon = sorted(p.eligible[i], key=lambda k: (max(free[k], p.release(i, k)), p.techs[k].technician_id))
        chosen |= set(soon[:limit])
    if keep is not None:
        chosen.add(keep)
    return sorted(chosen)


def solve(p: DayProblem, hint: Plan | None = None, time_limit_s: float | None = None,
          deterministic_limit: float | None = None, workers: int | None = None, seed: int | None = None,
          params: dict[str, Any] | None = None) -> Plan:
    """Minimise the stated cost with CP-SAT, one dispatch round at a time (:func:`rounds`).

    At each round the work not yet started stays with its technician but may be re-sequenced (a dispatcher
    re-prioritises the queue when an urgent ticket arrives); work already started is fixed. The round's
    model: for each new ticket and each candidate technician (:func:`candidates`) an optional interval, for
    each queued ticket a fixed-technician interval, each starting no earlier than its release, the round's
    time and the end of the technician's started work; exactly one technician or "unassigned" per new
    ticket; no overlap per technician; a boolean per SLA gate, paid when the interval ends past the gate (on
    the work clock: work past the shift resumes at tomorrow's shift start); skill gap and travel per
    (ticket, technician); each technician's load in % of capacity above the team's mean. The baseline's picks
    for the round, with the queue as it was, are the starting hint. ``hint`` is unused (the callers' day
    baseline)."""
    from ortools.sat.python import cp_model

    cfg = p.cfg
    t0 = time.perf_counter()
    plan = Plan("optimiser", {}, {})
    statuses: list[str] = []
    limit = float(time_limit_s or cfg.assign_time_limit_s)
    det = float(deterministic_limit or cfg.assign_deterministic_limit)
    for batch in rounds(p):
        batch = [i for i in batch if p.eligible[i]]
        if not batch:
            continue
        now = max(0, min(p.jobs[i].release_min for i in batch))
        state = _queue_state(p, plan, now)
        base_pick = _greedy_round(p, state, batch)
        chosen, status = _solve_round(p, state, batch, base_pick, limit, det, workers or cfg.assign_workers,
                                      cfg.assign_seed if seed is None else seed, params, cp_model)
        statuses.append(status)
        for i, k, start in chosen:
            plan.assignment[i], plan.start[i] = k, start
    plan.status = ("OPTIMAL" if statuses and all(s == "OPTIMAL" for s in statuses)
                   else "FEASIBLE" if statuses else "EMPTY")
    plan.seconds = round(time.perf_counter() - t0, 3)
    plan.cost = evaluate(p, plan)
    plan.objective = plan.cost["total"]
    return plan


@dataclass
class QueueState:
    """Each technician at a round's time: where started work ends, the queued (unstarted) tickets, the load."""

    now: list[int]                       # the round's time on each technician's work clock
    free: list[int]                      # end of started work (>= backlog)
    queued: dict[int, list[tuple[int, int]]]  # technician -> [(job, current start)]
    load: list[int]                      # backlog + every ticket planned on the technician


def _queue_state(p: DayProblem, plan: Plan, now_wall: int) -> QueueState:
    n = len(p.techs)
    now = [max(0, p.work_deadline(k, now_wall)) for k in range(n)]
    free = [t.backlog_min for t in p.techs]
    load = [t.backlog_min for t in p.techs]
    queued: dict[int, list[tuple[int, int]]] = {k: [] for k in range(n)}
    for i, k in plan.assignment.items():
        load[k] += p.duration(i, k)
        if plan.start[i] < now[k]:
            free[k] = max(free[k], plan.start[i] + p.duration(i, k))
        else:
            queued[k].append((i, plan.start[i]))
    return QueueState(now, free, queued, load)


def _greedy_round(p: DayProblem, state: QueueState, batch: list[int]) -> dict[int, tuple[int, int]]:
    """The baseline's picks for a round, appended after each technician's queue: job -> (technician, start)."""
    load = list(state.load)
    free = [max([state.free[k]] + [s + p.duration(i, k) for i, s in state.queued[k]]) for k in range(len(p.techs))]
    out = {}
    for i in batch:
        k = min(p.eligible[i], key=lambda k: (load[k] / p.techs[k].capacity_min, p.techs[k].technician_id))
        start = max(free[k], p.release(i, k))
        out[i] = (k, start)
        free[k] = start + p.duration(i, k)
        load[k] += p.duration(i, k)
    return out


def _gate_terms(m, p: DayProblem, i: int, k: int, lo: int, horizon: int, en, present, fixed: float,
                terms: list) -> float:
    """Add the SLA gate booleans of (job i on technician k) ending at ``en``; returns the fixed cost part."""
    cfg = p.cfg
    dur = p.duration(i, k)
    for g, (gate_wall, weight) in enumerate(zip(p.gate_minutes(i), cfg.gate_weights, strict=True)):
        deadline = p.work_deadline(k, gate_wall)
        if deadline >= horizon + dur:
            continue                               # cannot pass this gate
        if deadline < lo + dur:
            fixed += weight                        # passes it whatever the plan
            continue
        late = m.new_bool_var(f"late{i}_{k}_{g}")
        lits = [late.Not()] if present is None else [present, late.Not()]
        m.add(en <= deadline).only_enforce_if(lits)
        terms.append((late, round(weight * SCALE)))
    return fixed


def _solve_round(p: DayProblem, state: QueueState, batch: list[int], base_pick: dict[int, tuple[int, int]],
                 limit: float, det: float, workers: int, seed: int, params: dict[str, Any] | None, cp_model
                 ) -> tuple[list[tuple[int, int, int]], str]:
    """Solve one round; returns [(job, technician, start)] for the round's and the re-sequenced queued jobs."""
    cfg, techs = p.cfg, p.techs
    m = cp_model.CpModel()
    at_work = [k for k, t in enumerate(techs) if t.capacity_min > 0]
    queued = [(i, k, s) for k in at_work for i, s in state.queued[k]]
    horizon = (max(state.free + state.now + [0]) + max([p.release(i, k) for i in batch for k in p.eligible[i]])
               + sum(max(p.duration(i, k) for k in p.eligible[i]) for i in batch)
               + sum(p.duration(i, k) for i, k, _ in queued) + 1)
    x: dict[tuple[int, int], Any] = {}
    start: dict[tuple[int, int], Any] = {}
    per_tech: dict[int, list[tuple[Any, Any, int]]] = {k: [] for k in at_work}
    terms: list[tuple[Any, int]] = []
    for i, k, _ in queued:                          # queued work: same technician, any order
        dur = p.duration(i, k)
        lo = max(state.free[k], state.now[k], p.release(i, k))
        st = m.new_int_var(lo, horizon, f"qs{i}")
        en = m.new_int_var(lo + dur, horizon + dur, f"qe{i}")
        per_tech[k].append((m.new_interval_var(st, dur, en, f"qiv{i}"), None, dur))
        start[i, k] = st
        fixed = _gate_terms(m, p, i, k, lo, horizon, en, None, 0.0, terms)
        if fixed:
            terms.append((m.new_constant(1), round(fixed * SCALE)))
    queue_end = [max([state.free[k]] + [s + p.duration(j, k) for j, s in state.queued[k]])
                 for k in range(len(techs))]
    for i in batch:
        u = m.new_bool_var(f"u{i}")
        terms.append((u, round(cfg.unassigned_weight * SCALE)))
        choices = [u]
        for k in candidates(p, i, cfg.assign_candidates, base_pick[i][0], queue_end):
            dur = p.duration(i, k)
            lo = max(state.free[k], state.now[k], p.release(i, k))
            b = m.new_bool_var(f"x{i}_{k}")
            st = m.new_int_var(lo, horizon, f"s{i}_{k}")
            en = m.new_int_var(lo + dur, horizon + dur, f"e{i}_{k}")
            per_tech[k].append((m.new_optional_interval_var(st, dur, en, b, f"iv{i}_{k}"), b, dur))
            x[i, k], start[i, k] = b, st
            choices.append(b)
            fixed = (cfg.skill_gap_weight * p.gap(i, k) * p.jobs[i].est_min / 60.0
                     + cfg.travel_weight_per_km * p.travel_km(i, k))
            fixed = _gate_terms(m, p, i, k, lo, horizon, en, b, fixed, terms)
            terms.append((b, round(fixed * SCALE)))
        m.add_exactly_one(choices)
    # load balance: points of load (in % of capacity) above the team's mean after this round (a fixed target:
    # the round's estimated work spread over everyone at work), so the term stays linear and separable
    total_cap = sum(techs[k].capacity_min for k in at_work)
    expected = sum(state.load[k] for k in at_work) + sum(p.jobs[i].est_min for i in batch)
    mean_pct = 100.0 * expected / total_cap if total_cap else 0.0
    w_imb = round(cfg.imbalance_weight * SCALE)
    for k in at_work:
        t, mine = techs[k], per_tech[k]
        if not mine:
            continue
        m.add_no_overlap([iv for iv, _, _ in mine])
        new = [(b, d) for _, b, d in mine if b is not None]
        if w_imb and new:
            load = state.load[k] + sum(d * b for b, d in new)
            above = m.new_int_var(0, 10**7, f"above{k}")   # >= 100 × load / capacity − mean
            m.add(above * t.capacity_min >= 100 * load - math.floor(mean_pct * t.capacity_min))
            terms.append((above, w_imb))
    m.minimize(sum(c * v for v, c in terms if c))
    for (i, k), b in x.items():
        m.add_hint(b, base_pick[i][0] == k)
        if base_pick[i][0] == k:
            m.add_hint(start[i, k], base_pick[i][1])
    for i, k, s in queued:
        m.add_hint(start[i, k], max(s, state.free[k], state.now[k]))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = limit
    solver.parameters.max_deterministic_time = det
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    for key, value in (params or {}).items():
        setattr(solver.parameters, key, value)
    status = solver.solve(m)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):  # nothing in time: the baseline's round
        return ([(i, k, st) for i, (k, st) in base_pick.items()]
                + [(i, k, max(s, state.free[k], state.now[k])) for i, k, s in queued], f"{name}:baseline")
    out = [(i, k, int(solver.value(start[i, k]))) for (i, k), b in x.items() if solver.boolean_value(b)]
    out += [(i, k, int(solver.value(start[i, k]))) for i, k, _ in queued]
    return out, name


# ---- building the day from the lake's rows --------------------------------------------------------------------
def shift_start(day: date, cfg: RamSettings) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(hours=cfg.workday_start_utc_hour)


def capacity_minutes(cal: pd.DataFrame, day: date) -> dict[str, int]:
    """Available minutes per technician on ``day`` (from :func:`jobs.ram.data.calendar` rows)."""
    rows = cal[data.as_date(cal["day"]) == day]
    return {r["technician_id"]: round(float(r["available_hours"]) * 60) for r in rows.to_dict("records")
            if float(r["available_hours"]) > 0}


def queue_days(cal: pd.DataFrame, day: date, max_back: int = 7) -> list[date]:
    """The days whose new tickets are dispatched on ``day``: the day itself and the days before it on which
    nobody was at work (weekends, public holidays); none when nobody works on ``day`` either."""
    work = {d for d, h in cal.groupby(data.as_date(cal["day"]))["available_hours"].sum().items() if h > 0}
    if day not in work:
        return []
    out = [day]
    d = day - timedelta(days=1)
    while d not in work and len(out) <= max_back:
        out.append(d)
        d -= timedelta(days=1)
    return sorted(out)


def recent_hours(entries: pd.DataFrame, cal: pd.DataFrame, day: date, days: int) -> dict[str, float]:
    """Hours each technician really worked per available day over the ``days`` before ``day`` (time entries of
    every kind / days with available hours): what the planners use as the day's capacity when it is more
    than the schedule says (a team working long days is not as full as its schedule suggests)."""
    import pandas as pd

    if not days or entries is None or entries.empty or "technician_id" not in entries.columns:
        return {}
    lo = day - timedelta(days=days)
    e = entries.assign(d=pd.to_datetime(entries["work_date"]).dt.date)
    e = e[(e["d"] >= lo) & (e["d"] < day)]
    c = cal.assign(d=data.as_date(cal["day"]))
    c = c[(c["d"] >= lo) & (c["d"] < day) & (c["available_hours"] > 0)]
    n = c.groupby("technician_id")["d"].nunique()
    h = e[e["d"].isin(set(c["d"]))].groupby("technician_id")["hours"].sum().astype(float)
    return {tid: float(h.get(tid, 0.0)) / int(k) for tid, k in n.items() if k >= 5}


def build_day(day: date, techs: dict[str, data.Technician], cal: pd.DataFrame, queue: list[data.Ticket],
              estimates: dict, backlog: dict[str, int], cfg: RamSettings,
              worked: dict[str, float] | None = None) -> DayProblem:
    """The day's problem; capacity = the day's available hours, or the technician's recent hours per
    working day when larger (``worked``, :func:`recent_hours`)."""
    cap = capacity_minutes(cal, day)
    for tid, hours in (worked or {}).items():
        if cap.get(tid, 0) > 0:
            cap[tid] = max(cap[tid], round(hours * 60))
    s0 = shift_start(day, cfg)
    plan_techs = [PlanTech(t.technician_id, t.role, t.skills, t.lat, t.lon, cap[tid], backlog.get(tid, 0))
                  for tid, t in techs.items() if cap.get(tid, 0) > 0]
    jobs = []
    for tk in queue:
        tk.est_hours = data.estimate(estimates, tk.category, tk.priority)
        release = max(0, math.floor((tk.created_at - s0).total_seconds() / 60))
        jobs.append(Job(tk, release, max(1, round(tk.est_hours * 60))))
    return DayProblem(day, s0, plan_techs, jobs, cfg)


def open_backlog(tickets: pd.DataFrame, entries: pd.DataFrame, estimates: dict, at: datetime, since: date
                 ) -> dict[str, int]:
    """Minutes of work each technician still has queued at ``at``: their open tickets (created since
    ``since``, not resolved by then) × the estimate, less the hours already logged on them."""
    import pandas as pd

    if tickets is None or tickets.empty:
        return {}
    t = data.latest_rows(tickets, ["ticket_id"])
    created = pd.to_datetime(t["created_at"], utc=True)
    resolved = pd.to_datetime(t["resolved_at"], utc=True)
    at_ts = pd.Timestamp(at)
    open_ = t[(created < at_ts) & (created.dt.date >= since) & (resolved.isna() | (resolved >= at_ts))]
    logged: dict[str, float] = {}
    if entries is not None and not entries.empty:
        e = entries[entries["ticket_id"].isin(open_["ticket_id"]) &
                    (pd.to_datetime(entries["work_date"]).dt.date < at.date())]
        logged = e.groupby("ticket_id")["hours"].sum().astype(float).to_dict()
    out: dict[str, int] = {}
    for r in open_.to_dict("records"):
        left = max(0.0, data.estimate(estimates, r["category"], r["priority"]) - logged.get(r["ticket_id"], 0.0))
        out[r["assigned_technician_id"]] = out.get(r["assigned_technician_id"], 0) + round(left * 60)
    return out


def plan_rows(p: DayProblem, base: Plan, opt: Plan) -> list[dict[str, Any]]:
    """One row per ticket of the day: the optimiser's plan, the baseline's and what the PSA did."""
    rows = []

    def at(k: int, work_min: int) -> datetime:
        return p.shift_start + timedelta(minutes=p.wall(k, work_min))

    for i, j in enumerate(p.jobs):
        tk = j.ticket
        row: dict[str, Any] = {
            "ticket_id": tk.ticket_id, "client_id": tk.client_id, "site_id": tk.site_id, "priority": tk.priority,
            "category": tk.category, "required_skill": tk.skill, "required_skill_level": tk.level,
            "onsite": tk.onsite, "created_at": tk.created_at, "resolution_due_at": tk.resolution_due_at,
            "est_hours": round(j.est_min / 60.0, 2), "psa_technician_id": tk.psa_technician_id,
            "qualified_technicians": len(p.eligible[i]), "solver_status": opt.status,
            "objective": opt.cost.get("total"), "baseline_objective": base.cost.get("total"),
        }
        for prefix, plan in (("", opt), ("baseline_", base)):
            k = plan.assignment.get(i)
            if k is None:
                row.update({f"{prefix}technician_id": None, f"{prefix}planned_start": None,
                            f"{prefix}planned_end": None, f"{prefix}sla_gate": "unassigned"})
                if not prefix:
                    row.update({"travel_km": 0.0, "skill_gap": None})
                continue
            s, e = plan.start[i], plan.start[i] + p.duration(i, k)
            row.update({f"{prefix}technician_id": p.techs[k].technician_id, f"{prefix}planned_start": at(k, s),
                        f"{prefix}planned_end": at(k, e), f"{prefix}sla_gate": GATE_NAMES[p.gate_of(i, p.wall(k, e))]})
            if not prefix:
                row.update({"travel_km": round(p.travel_km(i, k), 2), "skill_gap": p.gap(i, k)})
        rows.append(row)
    return rows


# ---- the stage -------------------------------------------------------------------------------------------------
def plan_days(ctx: RunContext, cfg: RamSettings) -> list[date]:
    return list(ctx.dates[-cfg.max_plan_days:])


def inputs_for(ctx: RunContext, first: date, last: date, cfg: RamSettings) -> dict[str, Any]:
    """Everything the planners need for days ``first``..``last``, as exported up to ``last``."""
    from lakehouse.lake import Range

    end = last.isoformat()
    lookback = (first - timedelta(days=max(cfg.estimate_days, cfg.backlog_days) + 1)).isoformat()
    techs = data.technicians(ctx.read_pandas("processed.technicians", {"dt": Range(None, end)}))
    cal = data.calendar(techs, ctx.read_pandas("processed.technician_pto", {"dt": Range(None, end)}),
                        first - timedelta(days=max(8, cfg.capacity_recent_days + 1)), last, cfg.workdays)
    tickets = ctx.read_pandas("processed.tickets", {"dt": Range(lookback, end)})
    t = ctx.table("processed.time_entries", {"dt": Range(lookback, end)})
    entries = ctx.engine.to_pandas(t.select("technician_id", "ticket_id", "work_date", "hours"))
    sites = ctx.read_pandas("processed.sites", {"dt": Range(None, end)})
    return {"techs": techs, "calendar": cal, "tickets": tickets, "entries": entries, "sites": sites}


def plan_day(day: date, inp: dict[str, Any], cfg: RamSettings) -> tuple[DayProblem, Plan, Plan] | None:
    """The day's problem, the baseline plan and the optimiser's plan (None when nobody works that day)."""
    import pandas as pd

    days = queue_days(inp["calendar"], day)
    if not days:
        return None
    tickets = inp["tickets"]
    as_of = tickets[data.as_date(tickets["dt"]) <= day] if "dt" in tickets.columns else tickets
    created = pd.to_datetime(as_of["created_at"], utc=True).dt.date
    est_from = day - timedelta(days=cfg.estimate_days)
    window = as_of[(created >= est_from) & (created < day)]
    entries = inp["entries"]
    entries = entries[pd.to_datetime(entries["work_date"]).dt.date < day]
    estimates = data.effort_estimates(window, entries, cfg.min_estimate_samples, cfg.default_ticket_hours,
                                             cfg.estimate_statistic)
    todays = as_of[created.isin(days)]
    queue = data.tickets_from_frame(todays, inp["sites"])
    backlog = open_backlog(as_of, entries, estimates, shift_start(day, cfg), day - timedelta(days=cfg.backlog_days))
    worked = recent_hours(entries, inp["calendar"], day, cfg.capacity_recent_days)
    p = build_day(day, inp["techs"], inp["calendar"], queue, estimates, backlog, cfg, worked)
    base = greedy(p)
    opt = solve(p, hint=base)
    return p, base, opt


def run(ctx: RunContext) -> None:
    import pandas as pd

    cfg = ctx.config
    days = plan_days(ctx, cfg)
    inp = inputs_for(ctx, days[0], days[-1], cfg)
    rows = []
    for d in days:
        solved = plan_day(d, inp, cfg)
        if solved is None:
            continue
        for r in plan_rows(*solved):
            rows.append({**r, "dt": d.isoformat()})
    frame = pd.DataFrame(rows, columns=[c.name for c in _dataset().stored_columns()])
    ctx.write(TABLE, frame, replace=[{"dt": d.isoformat()} for d in days])


def _dataset():
    import schemas

    return schemas.get(TABLE)
