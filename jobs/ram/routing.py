"""Routes for onsite days: the day's onsite tickets, visited by the technicians the assignment sends onsite,
from and back to their homes, inside the sites' opening hours, with each visit's estimated service time and
the skills it needs (a vehicle routing problem with time windows, multiple depots and skills).

* **Jobs**: the onsite tickets of the day's plan (``analytics.ram_assignments``) that have a technician,
  and the visits the previous routed day could not make (for up to a week); a visit may start from
  ``ram.site_open_utc_hour`` or the ticket's creation, whichever is later, and must end by
  ``ram.site_close_utc_hour``; service time = the plan's estimated hours. A visit that cannot be made today
  (created after closing, no time left) is reported unrouted and offered again the next working day.
* **Vehicles**: those technicians, each from home (``home_latitude/longitude``), available from the shift
  start (``ram.workday_start_utc_hour``) for the day's available hours. The optimizer may hand a visit to
  another of them when that shortens the day's driving, never to one lacking the skill at the level the
  ticket requires (:mod:`jobs.ram.vrp` models skills as PyVRP routing profiles and checks every route).
* **Distances**: haversine × ``ram.road_factor`` (no network calls); drive time at ``ram.speed_kmh``.

PyVRP solves it (``ram.route_iterations`` iterations, capped at ``ram.route_time_limit_s``, seeded); VROOM,
with native skills, is the named baseline. Both solvers' routes are written, one row per stop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from jobs.ram import data
from jobs.ram import vrp as V

if TYPE_CHECKING:  # pragma: no cover
    from jobs.ram.settings import RamSettings
    from lakehouse.context import RunContext

TABLE = "analytics.ram_routes"
ASSIGNMENTS = "analytics.ram_assignments"
SOLVERS = ("pyvrp", "vroom")
#: What visiting a site is worth, in metres of driving: a visit is skipped only when it cannot fit (its time
#: window, the technician's shift) or would cost more than this much extra driving.
PRIZE_M = 500_000


@dataclass
class Visit:
    ticket_id: str
    site_id: str | None
    lat: float
    lon: float
    service_min: int
    skill: str
    level: int
    created_at: datetime
    assigned_technician_id: str | None


@dataclass
class Crew:
    technician_id: str
    lat: float
    lon: float
    skills: dict[str, int]
    start_min: int                  # minutes from the day's 00:00 UTC
    shift_min: int


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def build(day: date, visits: list[Visit], crew: list[Crew], cfg: RamSettings) -> tuple[V.Instance, list[int]]:
    """The day's :class:`jobs.ram.vrp.Instance` (minutes from midnight UTC, distances in metres) and the
    visits that cannot be made today."""
    open_, close = cfg.site_open_utc_hour * 60, cfg.site_close_utc_hour * 60
    points = [(c.lat, c.lon) for c in crew] + [(v.lat, v.lon) for v in visits]
    km = data.distance_matrix_km(points, cfg.road_factor)
    dist = np.round(km * 1000).astype(np.int64)
    dur = np.ceil(km / cfg.speed_kmh * 60).astype(np.int64)
    np.fill_diagonal(dur, 0)
    vehicles = [V.Vehicle(c.technician_id, k, k, c.start_min, c.start_min + c.shift_min, c.shift_min, 0,
                          frozenset(_skill_set(c.skills))) for k, c in enumerate(crew)]
    clients, unroutable = [], []
    for j, v in enumerate(visits):
        created = math.floor((v.created_at - midnight(day)).total_seconds() / 60)
        early = max(open_, created)
        late = close - v.service_min
        if late < early:
            unroutable.append(j)
        clients.append(V.Client(v.ticket_id, len(crew) + j, 0, v.service_min, early, max(late, early),
                                frozenset({(v.skill, v.level)}), required=False, prize=PRIZE_M))
    inst = V.Instance(f"routes {day}", [(c.lon, c.lat) for c in crew] + [(v.lon, v.lat) for v in visits], dist, dur,
                      vehicles, clients, scale=1000.0)
    keep = [j for j in range(len(visits)) if j not in set(unroutable)]
    if unroutable:  # solve only what can be visited; indices map back through ``keep``
        inst = _subset(inst, keep, len(crew))
    return inst, unroutable


def _skill_set(skills: dict[str, int]) -> Iterable[tuple[str, int]]:
    """A technician with m365 at level 3 holds (m365, 1), (m365, 2) and (m365, 3): a ticket needing (m365, 2)
    is a subset."""
    for name, level in skills.items():
        for lv in range(1, level + 1):
            yield (name, lv)


def _subset(inst: V.Instance, keep: list[int], n_depots: int) -> V.Instance:
    locs = list(range(n_depots)) + [n_depots + j for j in keep]
    remap = {old: new for new, old in enumerate(locs)}
    clients = [V.Client(c.name, remap[c.location], c.demand, c.service, c.tw_early, c.tw_late, c.skills, c.required,
                        c.prize) for j, c in enumerate(inst.clients) if j in set(keep)]
    return V.Instance(inst.name, [inst.coords[i] for i in locs], inst.distance[np.ix_(locs, locs)],
                      inst.duration[np.ix_(locs, locs)], inst.vehicles, clients, inst.scale)


def solve_day(day: date, visits: list[Visit], crew: list[Crew], cfg: RamSettings,
              solvers: Iterable[str] = SOLVERS) -> dict[str, Any]:
    """Both solvers' routes for a day, checked; returns {"instance", "unroutable", solver: Solution}."""
    inst, unroutable = build(day, visits, crew, cfg)
    out: dict[str, Any] = {"instance": inst, "unroutable": [visits[j].ticket_id for j in unroutable]}
    for name in solvers:
        if name == "pyvrp":
            sol = V.solve_pyvrp(inst, cfg.route_time_limit_s, cfg.route_iterations, seed=cfg.route_seed)
        else:
            sol = V.solve_vroom(inst, exploration=cfg.vroom_exploration, threads=1,
                                time_limit_s=cfg.route_time_limit_s)
        if not sol.feasible or V.check(inst, sol):
            sol = V.repair(inst, sol)
        problems = V.check(inst, sol)
        skill = [p for p in problems if "lacks skills" in p]
        if skill:  # never publish a route that sends someone without the skill
            raise RuntimeError(f"{name} routes for {day} break the skill rule: {skill[:3]}")
        sol.info["problems"] = problems
        out[name] = sol
    return out


def route_rows(day: date, visits: list[Visit], crew: list[Crew], solved: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stop (home departure, each visit, home return) per technician and solver; unrouted visits
    get a row of their own."""
    inst: V.Instance = solved["instance"]
    by_id = {v.ticket_id: v for v in visits}
    t0 = midnight(day)
    rows = []
    for solver in SOLVERS:
        sol: V.Solution | None = solved.get(solver)
        if sol is None:
            continue
        for r in sol.routes:
            c = crew[r.vehicle]
            seq, prev, km_total = 0, r.vehicle, 0.0
            stops = []
            for i, start in zip(r.visits, r.starts, strict=True):
                cl = inst.clients[i]
                v = by_id[cl.name]
                leg = float(inst.distance[prev, cl.location]) / 1000.0
                km_total += leg
                stops.append((v, start, leg))
                prev = cl.location
            back = float(inst.distance[prev, r.vehicle]) / 1000.0
            km_total += back
            depart = (stops[0][1] - int(inst.duration[r.vehicle, inst.clients[r.visits[0]].location])
                      if stops else c.start_min)
            base = {"solver": solver, "route": c.technician_id, "technician_id": c.technician_id,
                    "route_km": round(km_total, 2), "visits": len(stops)}
            rows.append({**base, "stop_seq": 0, "kind": "start", "ticket_id": None, "site_id": None,
                         "latitude": c.lat, "longitude": c.lon, "arrival": None,
                         "departure": t0 + timedelta(minutes=depart), "leg_km": 0.0, "service_minutes": 0,
                         "assigned_technician_id": None})
            for seq, (v, start, leg) in enumerate(stops, start=1):
                rows.append({**base, "stop_seq": seq, "kind": "visit", "ticket_id": v.ticket_id,
                             "site_id": v.site_id, "latitude": v.lat, "longitude": v.lon,
                             "arrival": t0 + timedelta(minutes=start),
                             "departure": t0 + timedelta(minutes=start + v.service_min), "leg_km": round(leg, 2),
                             "service_minutes": v.service_min, "assigned_technician_id": v.assigned_technician_id})
            last = stops[-1][1] + stops[-1][0].service_min if stops else c.start_min
            back_at = last + int(inst.duration[prev, r.vehicle])
            rows.append({**base, "stop_seq": len(stops) + 1, "kind": "end", "ticket_id": None, "site_id": None,
                         "latitude": c.lat, "longitude": c.lon, "arrival": t0 + timedelta(minutes=back_at),
                         "departure": None, "leg_km": round(back, 2), "service_minutes": 0,
                         "assigned_technician_id": None})
        missing = [inst.clients[i].name for i in sol.unassigned] + list(solved["unroutable"])
        for seq, tid in enumerate(sorted(missing), start=1):
            v = by_id[tid]
            rows.append({"solver": solver, "route": "unrouted", "technician_id": None, "route_km": 0.0, "visits": 0,
                         "stop_seq": seq, "kind": "unrouted", "ticket_id": tid,
                         "site_id": v.site_id, "latitude": v.lat, "longitude": v.lon, "arrival": None,
                         "departure": None, "leg_km": 0.0, "service_minutes": v.service_min,
                         "assigned_technician_id": v.assigned_technician_id})
    return rows


# ---- the stage ------------------------------------------------------------------------------------------------------
def day_inputs(plan: pd.DataFrame, techs: dict[str, data.Technician], cal: pd.DataFrame, sites: pd.DataFrame,
               day: date, cfg: RamSettings, carried: pd.DataFrame | None = None) -> tuple[list[Visit], list[Crew]]:
    """The visits and the crew of a day: its assignment rows' onsite tickets, and ``carried``, the assignment
    rows of visits an earlier day could not make (created too late, no time left), by technicians at work."""
    from jobs.ram.assignment import capacity_minutes

    cap = capacity_minutes(cal, day)
    rows = plan[(plan["onsite"] == True) & plan["technician_id"].notna()]  # noqa: E712
    if carried is not None and not carried.empty:
        back = carried[~carried["ticket_id"].isin(rows["ticket_id"])]
        back = back[back["technician_id"].map(lambda t: cap.get(t, 0) > 0)]
        rows = pd.concat([rows, back[rows.columns]], ignore_index=True) if not back.empty else rows
    coords = {s["site_id"]: (float(s["latitude"]), float(s["longitude"]))
              for s in data.latest_rows(sites, ["site_id"]).to_dict("records")}
    visits = []
    for r in rows.sort_values("ticket_id").to_dict("records"):
        if r["site_id"] not in coords:
            continue
        lat, lon = coords[r["site_id"]]
        visits.append(Visit(r["ticket_id"], r["site_id"], lat, lon, max(1, round(float(r["est_hours"]) * 60)),
                            r["required_skill"], int(r["required_skill_level"]),
                            pd.Timestamp(r["created_at"]).to_pydatetime(), r["technician_id"]))
    crew = []
    for tid in sorted(set(rows["technician_id"])):
        t = techs.get(tid)
        if t is None:
            continue
        crew.append(Crew(tid, t.lat, t.lon, t.skills, cfg.workday_start_utc_hour * 60, max(cap.get(tid, 0), 60)))
    return visits, crew


CARRY_DAYS = 7  # an onsite visit no day could make is offered to the next days' routes for this long


def _unrouted(routes: pd.DataFrame, plans: pd.DataFrame) -> pd.DataFrame:
    """Assignment rows of the visits the last routed day (PyVRP) left unrouted."""
    if routes is None or routes.empty or plans.empty:
        return plans.iloc[0:0]
    last = routes[routes["solver"] == "pyvrp"]
    if last.empty:
        return plans.iloc[0:0]
    last = last[last["dt"] == last["dt"].max()]
    lost = set(last[last["kind"] == "unrouted"]["ticket_id"])
    rows = plans[plans["ticket_id"].isin(lost) & plans["technician_id"].notna()]
    return rows.sort_values("dt").drop_duplicates("ticket_id", keep="last")


def run(ctx: RunContext) -> None:
    from jobs.ram.assignment import plan_days
    from lakehouse.lake import Range

    cfg = ctx.config
    days = plan_days(ctx, cfg)
    end = days[-1].isoformat()
    back = (days[0] - timedelta(days=CARRY_DAYS)).isoformat()
    plans = ctx.read_pandas(ASSIGNMENTS, {"dt": Range(back, end)})
    techs = data.technicians(ctx.read_pandas("processed.technicians", {"dt": Range(None, end)}))
    cal = data.calendar(techs, ctx.read_pandas("processed.technician_pto", {"dt": Range(None, end)}), days[0],
                        days[-1], cfg.workdays)
    sites = ctx.read_pandas("processed.sites", {"dt": Range(None, end)})
    before = ctx.read_pandas(TABLE, {"dt": Range(back, (days[0] - timedelta(days=1)).isoformat())})
    carried = _unrouted(before, plans)
    rows = []
    for d in days:
        plan = plans[plans["dt"] == d.isoformat()]
        recent = carried[pd.to_datetime(carried["created_at"], utc=True) >= pd.Timestamp(
            midnight(d - timedelta(days=CARRY_DAYS)))] if not carried.empty else carried
        visits, crew = day_inputs(plan, techs, cal, sites, d, cfg, recent)
        if not visits or not crew:
            continue
        solved = solve_day(d, visits, crew, cfg)
        mine = [{**r, "dt": d.isoformat()} for r in route_rows(d, visits, crew, solved)]
        rows += mine
        carried = _unrouted(pd.DataFrame(mine), pd.concat([plans, recent], ignore_index=True))
    import schemas

    frame = pd.DataFrame(rows, columns=[c.name for c in schemas.get(TABLE).stored_columns()])
    ctx.write(TABLE, frame, replace=[{"dt": d.isoformat()} for d in days])
