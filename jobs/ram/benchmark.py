"""Public VRPTW / CVRP benchmark files into :class:`jobs.ram.vrp.Instance`, for ``msp ram solve FILE``.

Formats (read with the ``vrplib`` package):

* **Solomon** (the VRPTW benchmark of Solomon 1987): a name line, ``VEHICLE`` / ``NUMBER CAPACITY`` with the
  fleet size K and capacity Q, then ``CUSTOMER`` and one row per node ``CUST NO. XCOORD. YCOORD. DEMAND
  READY TIME DUE DATE SERVICE TIME``, node 0 the depot; travel time equals distance; the ready time and due
  date bound the start of service (SINTEF TOP, "Solomon benchmark - documentation",
  sintef.no/projectweb/top/vrptw/documentation2). Best-known distances use Euclidean arcs truncated to one
  decimal, hence the default rounding ``dimacs`` (× 10, truncated; costs are reported divided by 10).
* **VRPLIB** (TSPLIB95 keywords as extended by CVRPLIB): ``NAME``, ``TYPE``, ``DIMENSION``, ``CAPACITY``,
  ``VEHICLES``, ``EDGE_WEIGHT_TYPE``, then ``NODE_COORD_SECTION``, ``DEMAND_SECTION``, ``DEPOT_SECTION``
  and, for time windows, ``TIME_WINDOW_SECTION`` and ``SERVICE_TIME_SECTION`` (pyvrp.org/dev/
  supported_vrplib_fields.html; github.com/PyVRP/VRPLIB). ``EUC_2D`` distances are rounded to the nearest
  integer (TSPLIB95's nint), the default rounding ``round``.

The objective is the total distance with at most the instance's vehicles (the Solomon literature ranks by
vehicles first, then distance; both are printed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jobs.ram.vrp import INF, Client, Instance, Vehicle

ROUNDINGS = {"round": (1.0, np.round), "trunc": (1.0, np.trunc), "dimacs": (10.0, np.trunc),
             "exact": (1000.0, np.round), "none": (1.0, lambda a: a)}


def detect_format(path: str | Path) -> str:
    """``solomon`` when the second non-empty line is the VEHICLE header, else ``vrplib``."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if len(lines) > 2 and lines[1].upper().startswith("VEHICLE"):
        return "solomon"
    return "vrplib"


def read(path: str | Path, fmt: str = "auto", rounding: str | None = None) -> Instance:
    """Read a Solomon or VRPLIB file (``fmt`` auto-detected) into an :class:`Instance`."""
    import vrplib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no instance file at {path}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in ("solomon", "vrplib"):
        raise ValueError(f"unknown format {fmt!r}: solomon or vrplib")
    try:
        inst = vrplib.read_instance(str(path), instance_format=fmt)
    except Exception as exc:  # the parser's messages are terse: say which file and format
        raise ValueError(f"{path}: not a readable {fmt} instance ({type(exc).__name__}: {exc})") from exc
    rounding = rounding or ("dimacs" if fmt == "solomon" else "round")
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding {rounding!r}: one of {', '.join(ROUNDINGS)}")
    scale, fn = ROUNDINGS[rounding]

    def r(a) -> np.ndarray:
        return np.asarray(fn(np.asarray(a, dtype=float) * scale)).astype(np.int64)

    coords = np.asarray(inst["node_coord"], dtype=float)
    n = len(coords)
    dist = r(inst["edge_weight"])
    depots = [int(d) for d in np.atleast_1d(inst.get("depot", [0]))]
    if depots != [0]:
        raise ValueError(f"{path}: only single-depot instances with the depot first are supported, got {depots}")
    demand = np.atleast_1d(inst.get("demand", np.zeros(n))).astype(np.int64)
    tw = np.asarray(inst["time_window"]) if "time_window" in inst else None
    service = inst.get("service_time", 0)
    service = np.full(n, service) if np.isscalar(service) else np.asarray(service)
    service = r(service)
    if fmt == "vrplib" and np.isscalar(inst.get("service_time", None)):
        service[0] = 0
    capacity = int(inst.get("capacity", 0) or 0)
    k = int(inst.get("vehicles", n - 1) or (n - 1))
    early, late = (int(r(tw[0, 0])), int(r(tw[0, 1]))) if tw is not None else (0, INF)
    vehicles = [Vehicle(f"v{j + 1}", 0, 0, early, late, INF, capacity) for j in range(k)]
    clients = []
    for i in range(1, n):
        e, lt = (int(r(tw[i, 0])), int(r(tw[i, 1]))) if tw is not None else (0, INF)
        clients.append(Client(str(i if fmt == "solomon" else i + 1), i, int(demand[i]), int(service[i]), e, lt))
    return Instance(str(inst.get("name", path.stem)), [tuple(c) for c in coords], dist, dist.copy(), vehicles,
                    clients, scale=scale)


def describe(inst: Instance, solutions) -> list[str]:
    """Printable lines: per solver the cost, vehicles used, time and routes (client numbers as in the file)."""
    from jobs.ram.vrp import check

    lines = [f"instance {inst.name}: {len(inst.clients)} clients, {len(inst.vehicles)} vehicles"
             + (f", capacity {inst.vehicles[0].capacity}" if inst.vehicles and inst.vehicles[0].capacity else "")]
    for sol in solutions:
        problems = check(inst, sol)
        lines.append(f"{sol.solver}: cost {sol.cost(inst):.1f}  vehicles {len(sol.routes)}  time {sol.seconds:.2f} s"
                     f"  {'feasible' if not problems and not sol.unassigned else 'INFEASIBLE'}")
        for n, route in enumerate(sol.routes, start=1):
            lines.append(f"  Route #{n}: " + " ".join(inst.clients[i].name for i in route.visits))
        if sol.unassigned:
            lines.append(f"  unassigned: {' '.join(inst.clients[i].name for i in sol.unassigned)}")
        lines += [f"  ! {p}" for p in problems[:10]]
    return lines
