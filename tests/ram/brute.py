"""Exact optimum of tiny routing instances by enumeration (the reference the solver tests compare with).

Every assignment of clients to at most K routes, each route's best feasible order (time windows with
waiting, capacity, the depot's closing time), on the same integer matrices the solvers see. Exponential:
for instances of at most 8 clients.
"""

from __future__ import annotations

import itertools
from functools import cache

from jobs.ram.vrp import Instance


def optimum(inst: Instance) -> int | None:
    """The minimal total distance (solver units), or None when no feasible solution exists."""
    n = len(inst.clients)
    if n > 8:
        raise ValueError("enumeration is for at most 8 clients")
    v = inst.vehicles[0]
    k = len(inst.vehicles)
    d, t = inst.distance, inst.duration

    @cache
    def best_route(subset: frozenset) -> int | None:
        if not subset:
            return 0
        if v.capacity and sum(inst.clients[i].demand for i in subset) > v.capacity:
            return None
        best = None
        for order in itertools.permutations(sorted(subset)):
            time, dist, prev, ok = v.tw_early, 0, v.start, True
            for i in order:
                c = inst.clients[i]
                time = max(time + int(t[prev, c.location]), c.tw_early)
                if time > c.tw_late:
                    ok = False
                    break
                time += c.service
                dist += int(d[prev, c.location])
                prev = c.location
            if not ok or time + int(t[prev, v.end]) > v.tw_late:
                continue
            dist += int(d[prev, v.end])
            best = dist if best is None else min(best, dist)
        return best

    best = None
    for labels in itertools.product(range(k), repeat=n):
        if any(labels[j] > max(labels[:j], default=-1) + 1 for j in range(n)):
            continue  # symmetric relabelling: routes are interchangeable
        total = 0
        for r in range(k):
            cost = best_route(frozenset(i for i, lab in enumerate(labels) if lab == r))
            if cost is None:
                total = None
                break
            total += cost
        if total is not None:
            best = total if best is None else min(best, total)
    return best
