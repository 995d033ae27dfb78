"""One vehicle-routing instance, two solvers: PyVRP (the optimizer) and VROOM (the named baseline).

:class:`Instance` is solver-neutral: integer distance and duration matrices, vehicles with a start and end
location, a time window, a shift length, a capacity and a set of skills, and clients with a location, a
demand, a service duration, a time window, the skills they require and whether they must be visited.

**Skills.** VROOM has them natively (a job is served only by a vehicle holding all its skills). PyVRP has
no skills; it has routing profiles (one distance/duration matrix per profile, one profile per vehicle type,
"site-dependent VRP" in its documentation, pyvrp.org/notebooks/profiles.html). Every group of vehicles with
the same skills gets a profile in which the arcs into and out of the clients they may not serve cost
``pyvrp.constants.MAX_VALUE`` (what ``pyvrp.read`` does for VRPLIB's ``VEHICLES_ALLOWED_CLIENTS``), so such
a visit is never worth it; optional clients carry a prize far below that value. :func:`check` then
verifies every returned route: no client served by a vehicle lacking one of its skills, no time window
missed, no shift exceeded, no capacity exceeded.
"""

from __future__ import annotations

import itertools
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INF = np.iinfo(np.int64).max


@dataclass
class Vehicle:
    name: str
    start: int                      # location index
    end: int
    tw_early: int = 0
    tw_late: int = INF
    shift: int = INF                # maximum route duration
    capacity: int = 0               # 0: unconstrained
    skills: frozenset = frozenset()


@dataclass
class Client:
    name: str
    location: int
    demand: int = 0
    service: int = 0
    tw_early: int = 0
    tw_late: int = INF              # latest start of service
    skills: frozenset = frozenset()
    required: bool = True
    prize: int = 0


@dataclass
class Instance:
    name: str
    coords: list[tuple[float, float]]
    distance: np.ndarray            # int64, locations x locations
    duration: np.ndarray
    vehicles: list[Vehicle]
    clients: list[Client]
    scale: float = 1.0              # reported costs = solver units / scale

    def can_serve(self, v: Vehicle, c: Client) -> bool:
        return c.skills <= v.skills


@dataclass
class Route:
    vehicle: int
    visits: list[int]               # client indices in order
    starts: list[int]               # service start per visit
    distance: int
    duration: int
    start_time: int = 0
    end_time: int = 0


@dataclass
class Solution:
    solver: str
    routes: list[Route]
    unassigned: list[int]
    seconds: float
    feasible: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def distance(self) -> int:
        return int(sum(r.distance for r in self.routes))

    def cost(self, inst: Instance) -> float:
        return self.distance / inst.scale


# ---- PyVRP -----------------------------------------------------------------------------------------------------
def solve_pyvrp(inst: Instance, time_limit_s: float, iterations: int | None = None, seed: int = 0) -> Solution:
    """Solve with PyVRP's iterated local search: stop after ``iterations`` (deterministic) or ``time_limit_s``
    seconds, whichever comes first."""
    import pyvrp.stop as stop
    from pyvrp import Model
    from pyvrp.constants import MAX_VALUE

    t0 = time.perf_counter()
    if not inst.clients:
        return Solution("pyvrp", [], [], 0.0)
    m = Model()
    locs = [m.add_location(x, y) for x, y in inst.coords]
    depot_of: dict[int, Any] = {}
    for v in inst.vehicles:
        for loc in (v.start, v.end):
            if loc not in depot_of:
                depot_of[loc] = m.add_depot(locs[loc])
    dims = 1 if any(c.demand for c in inst.clients) or any(v.capacity for v in inst.vehicles) else 0
    clients = []
    for c in inst.clients:
        clients.append(m.add_client(locs[c.location], delivery=[c.demand] if dims else [], service_duration=c.service,
                                    tw_early=c.tw_early, tw_late=min(c.tw_late, INF), required=c.required,
                                    prize=c.prize))
    # one routing profile per distinct skill set; arcs to clients a profile may not serve cost MAX_VALUE
    groups: dict[frozenset, list[int]] = {}
    for k, v in enumerate(inst.vehicles):
        groups.setdefault(v.skills, []).append(k)
    skilled = any(c.skills for c in inst.clients)
    profiles = {}
    for skills in groups:
        prof = m.add_profile(name=",".join(sorted(map(str, skills))))
        profiles[skills] = prof
        banned = {c.location for c in inst.clients if skilled and not c.skills <= skills}
        n = len(locs)
        for a in range(n):
            for b in range(n):
                if a == b:
                    continue
                if a in banned or b in banned:
                    m.add_edge(locs[a], locs[b], MAX_VALUE, MAX_VALUE, profile=prof)
                else:
                    m.add_edge(locs[a], locs[b], int(inst.distance[a, b]), int(inst.duration[a, b]), profile=prof)
    # vehicle types: identical vehicles share one type (a Solomon fleet), else one type each
    types: dict[tuple, list[int]] = {}
    for k, v in enumerate(inst.vehicles):
        types.setdefault((v.start, v.end, v.tw_early, v.tw_late, v.shift, v.capacity, v.skills), []).append(k)
    type_vehicles: list[list[int]] = []
    for (start, end, early, late, shift, cap, skills), members in types.items():
        m.add_vehicle_type(num_available=len(members), capacity=[cap] if dims else [], start_depot=depot_of[start],
                           end_depot=depot_of[end], tw_early=early, tw_late=min(late, INF),
                           shift_duration=min(shift, INF), profile=profiles[skills],
                           name=",".join(inst.vehicles[k].name for k in members))
        type_vehicles.append(members)
    criteria = [stop.MaxRuntime(time_limit_s)]
    if iterations:
        criteria.append(stop.MaxIterations(iterations))
    with warnings.catch_warnings(record=True) as caught:  # PenaltyBoundWarning: arcs at MAX_VALUE (skills)
        warnings.simplefilter("always")
        res = m.solve(stop=stop.MultipleCriteria(criteria), seed=seed, display=False)
    best = res.best
    routes, used = [], dict.fromkeys(range(len(type_vehicles)), 0)
    for r in best.routes():
        t = r.vehicle_type()
        vehicle = type_vehicles[t][used[t]]
        used[t] += 1
        sched = [a for a in r.schedule() if a.is_client()]
        routes.append(Route(vehicle, [a.idx for a in sched], [int(a.start_time) for a in sched], int(r.distance()),
                            int(r.duration()), int(r.start_time()), int(r.end_time())))
    served = {i for r in routes for i in r.visits}
    unassigned = [i for i in range(len(inst.clients)) if i not in served]
    sol = Solution("pyvrp", routes, unassigned, round(time.perf_counter() - t0, 3), bool(best.is_feasible()),
                   {"iterations": res.num_iterations, "runtime": round(res.runtime, 3),
                    "warnings": sorted({type(w.message).__name__ for w in caught})})
    return sol


# ---- VROOM -----------------------------------------------------------------------------------------------------
def skill_ids(inst: Instance) -> dict[Any, int]:
    names = sorted({s for v in inst.vehicles for s in v.skills} | {s for c in inst.clients for s in c.skills}, key=str)
    return {s: i + 1 for i, s in enumerate(names)}


def solve_vroom(inst: Instance, exploration: int = 5, threads: int = 1, time_limit_s: float | None = None
                ) -> Solution:
    """Solve with VROOM (skills native; cost = the distance matrix)."""
    from datetime import timedelta

    import vroom

    t0 = time.perf_counter()
    if not inst.clients:
        return Solution("vroom", [], [], 0.0)
    ids = skill_ids(inst)
    inp = vroom.Input()
    inp.set_durations_matrix(profile="car", matrix_input=np.asarray(inst.duration, dtype=np.uint32))
    inp.set_costs_matrix(profile="car", matrix_input=np.asarray(inst.distance, dtype=np.uint32))
    big = 2**31 - 1
    dims = any(c.demand for c in inst.clients) or any(v.capacity for v in inst.vehicles)
    for k, v in enumerate(inst.vehicles):
        kw: dict[str, Any] = {"start": v.start, "end": v.end, "skills": {ids[s] for s in v.skills},
                              "time_window": (int(v.tw_early), int(min(v.tw_late, big)))}
        if dims:
            kw["capacity"] = [int(v.capacity)]
        if v.shift < INF:
            kw["max_travel_time"] = int(v.shift)
        inp.add_vehicle(vroom.Vehicle(k + 1, **kw))
    jobs = []
    for i, c in enumerate(inst.clients):
        kw = {"location": c.location, "default_service": int(c.service), "skills": {ids[s] for s in c.skills},
              "time_windows": [(int(c.tw_early), int(min(c.tw_late, big)))]}
        if dims:
            kw["delivery"] = [int(c.demand)]
        jobs.append(vroom.Job(i + 1, **kw))
    inp.add_job(jobs)
    sol = inp.solve(exploration_level=exploration, nb_threads=threads,
                    timeout=timedelta(seconds=time_limit_s) if time_limit_s else None)
    out = sol.to_dict()
    routes = []
    for r in out.get("routes", []):
        visits, starts = [], []
        for step in r["steps"]:
            if step["type"] == "job":
                visits.append(int(step["id"]) - 1)
                starts.append(int(step["arrival"]) + int(step.get("waiting_time", 0)))
        if visits:
            path = [inst.vehicles[r["vehicle"] - 1].start] + [inst.clients[i].location for i in visits] + [
                inst.vehicles[r["vehicle"] - 1].end]
            dist = int(sum(inst.distance[a, b] for a, b in itertools.pairwise(path)))
            steps = r["steps"]
            routes.append(Route(int(r["vehicle"]) - 1, visits, starts, dist, int(r.get("duration", 0)),
                                int(steps[0]["arrival"]), int(steps[-1]["arrival"])))
    unassigned = [int(u["id"]) - 1 for u in out.get("unassigned", [])]
    return Solution("vroom", routes, unassigned, round(time.perf_counter() - t0, 3), True)


# ---- verification ------------------------------------------------------------------------------------------------
def repair(inst: Instance, sol: Solution) -> Solution:
    """Drop optional visits until every route keeps its time windows, shift and capacity (a heuristic may
    return an infeasible best when no feasible one was found in time); dropped visits become unassigned.
    Required clients are never dropped, so a solution that needs them stays flagged by :func:`check`."""
    routes, dropped = [], list(sol.unassigned)
    for r in sol.routes:
        visits = list(r.visits)
        while visits:
            starts = _schedule(inst, inst.vehicles[r.vehicle], visits, r.start_time)
            bad = _first_violation(inst, inst.vehicles[r.vehicle], visits, starts, r.start_time)
            if bad is None or inst.clients[visits[bad]].required:
                break
            dropped.append(visits.pop(bad))
        if visits:
            starts = _schedule(inst, inst.vehicles[r.vehicle], visits, r.start_time)
            path = [inst.vehicles[r.vehicle].start] + [inst.clients[i].location for i in visits] + [
                inst.vehicles[r.vehicle].end]
            dist = int(sum(inst.distance[a, b] for a, b in itertools.pairwise(path)))
            routes.append(Route(r.vehicle, visits, starts, dist, r.duration, r.start_time, r.end_time))
    return Solution(sol.solver, routes, sorted(dropped), sol.seconds, True, dict(sol.info))


def _schedule(inst: Instance, v: Vehicle, visits: list[int], start_time: int) -> list[int]:
    t, prev, out = max(v.tw_early, start_time), v.start, []
    for i in visits:
        c = inst.clients[i]
        t = max(t + int(inst.duration[prev, c.location]), c.tw_early)
        out.append(t)
        t += c.service
        prev = c.location
    return out


def _first_violation(inst: Instance, v: Vehicle, visits: list[int], starts: list[int], start_time: int) -> int | None:
    load = 0
    for n, (i, t) in enumerate(zip(visits, starts, strict=True)):
        c = inst.clients[i]
        load += c.demand
        if t > c.tw_late or (v.capacity and load > v.capacity):
            return n
    back = starts[-1] + inst.clients[visits[-1]].service + int(inst.duration[inst.clients[visits[-1]].location, v.end])
    depart = max(v.tw_early, start_time)
    if back > v.tw_late or (v.shift < INF and back - depart > v.shift):
        return len(visits) - 1
    return None



def check(inst: Instance, sol: Solution) -> list[str]:
    """Every violation in a solution: skills, time windows, shift length, capacity, double visits."""
    problems: list[str] = []
    seen: set[int] = set()
    for r in sol.routes:
        v = inst.vehicles[r.vehicle]
        load = 0
        t = depart = max(v.tw_early, r.start_time)
        prev = v.start
        for i in r.visits:
            c = inst.clients[i]
            if i in seen:
                problems.append(f"client {c.name} visited twice")
            seen.add(i)
            if not inst.can_serve(v, c):
                problems.append(f"vehicle {v.name} lacks skills {sorted(map(str, c.skills - v.skills))} for {c.name}")
            t = max(t + int(inst.duration[prev, c.location]), c.tw_early)
            if t > c.tw_late:
                problems.append(f"{c.name}: service starts at {t}, after its window closes at {c.tw_late}")
            t += c.service
            load += c.demand
            prev = c.location
        t += int(inst.duration[prev, v.end])
        if v.capacity and load > v.capacity:
            problems.append(f"vehicle {v.name} carries {load} > capacity {v.capacity}")
        if t > v.tw_late:
            problems.append(f"vehicle {v.name} returns at {t}, after {v.tw_late}")
        if v.shift < INF and r.visits and t - depart > v.shift:
            problems.append(f"vehicle {v.name} works {t - depart} > shift {v.shift}")
    for i, c in enumerate(inst.clients):
        if c.required and i not in seen:
            problems.append(f"required client {c.name} not visited")
    return problems
