"""The MSP's suppliers: who they are, what they bill, and which have a written contract."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakehouse.synth import catalog, names
from lakehouse.synth.rng import stream
from lakehouse.synth.rows import Rows, clock
from lakehouse.synth.textfmt import NULL, ids

VENDOR_ID = ("VN-", 4)
SLA = ("4-hour response, business hours", "Next business day", "24x7, 1-hour response for severity 1",
       "99.9 % monthly uptime", "Best effort", "8-hour response")
TERMS = ("Net 30", "Net 45", "Net 15", "Due on receipt", "Annual in advance", "Monthly in advance")
_MORE = ("Apex", "Beacon", "Cascade", "Delta", "Ember", "Frontier", "Glacier", "Horizon", "Ironwood", "Juniper",
         "Kestrel", "Lighthouse", "Meridian", "Northgate", "Overland", "Prism", "Quarry", "Redwood", "Sterling",
         "Tundra", "Uplink", "Vanguard", "Wildflower", "Yarrow", "Zephyr")
_KIND = (("Networks", "hardware", "hardware", "projects"), ("Software", "software", "software_subscriptions",
                                                           "service_desk"),
         ("Consulting", "professional_services", "professional_services", "finance_admin"),
         ("Security", "security", "software_subscriptions", "security_ops"),
         ("Media", "marketing", "marketing", "sales_marketing"), ("Telecom", "telecom", "telecom", "finance_admin"))


@dataclass
class Vendors:
    n: int
    name: np.ndarray
    category: np.ndarray
    expense_category: np.ndarray
    department: np.ndarray
    recurring: np.ndarray  #: monthly cents
    rate: np.ndarray  #: usage purchases per business day
    median: np.ndarray  #: usage amount median, cents
    contract: np.ndarray
    created: np.ndarray  #: day
    payment_terms: np.ndarray
    anomaly: np.ndarray  #: only exists because of a planted new-service anomaly


def plan_vendors(w, n_new: int) -> Vendors:
    """``scale.vendors`` regular suppliers plus ``n_new`` that appear with new-service anomalies."""
    sc = w.scale
    rng = stream(w.seed, "vendors")
    factor = max(0.15, sc.clients / 150)
    base = list(catalog.VENDORS)
    k = 0
    while len(base) < sc.vendors:
        kind = _KIND[k % len(_KIND)]
        base.append((f"{_MORE[k % len(_MORE)]} {kind[0]}" + (f" {k // len(_MORE) + 2}" if k >= len(_MORE) else ""),
                     kind[1], kind[2], kind[3], int(rng.integers(2, 20)) * 100 if rng.random() < 0.5 else 0,
                     0.0 if rng.random() < 0.5 else float(rng.uniform(0.05, 0.5)), int(rng.integers(150, 2500)),
                     bool(rng.random() < 0.6)))
        k += 1
    base = base[: sc.vendors]
    new = []
    for j in range(n_new):
        nm, cat, ecat = catalog.NEW_SERVICE_VENDORS[j % len(catalog.NEW_SERVICE_VENDORS)]
        new.append((nm + (f" {j // len(catalog.NEW_SERVICE_VENDORS) + 2}" if j >= len(catalog.NEW_SERVICE_VENDORS)
                          else ""), cat, ecat, "", 0, 0.0, 0, j % 2 == 0))
    rows = base + new
    n = len(rows)
    col = list(zip(*rows, strict=True))
    recurring = np.round(np.asarray(col[4], dtype=float) * factor**0.8).astype(np.int64) * 100
    rate = np.asarray(col[5], dtype=float)
    rate *= sc.expenses_per_business_day / max(rate.sum(), 1e-9)  # usage purchases per business day in total
    anomaly = np.arange(n) >= len(base)
    created = np.where(anomaly, NULL, -rng.integers(30, 2500, n))
    return Vendors(n, np.asarray(col[0], dtype=object), np.asarray(col[1], dtype=object),
                   np.asarray(col[2], dtype=object), np.asarray(col[3], dtype=object), recurring, rate,
                   np.asarray(col[6], dtype=np.int64) * 100, np.asarray(col[7], dtype=bool), created,
                   np.asarray(TERMS, dtype=object)[rng.integers(0, 4, n)], anomaly)


def emit_vendors(w, sinks) -> None:
    v = w.extra["vendors"]
    rng = stream(w.seed, "vendor-rows")
    i = np.flatnonzero(v.created != NULL)
    first, last = names.people(rng, v.n)
    slug = [names.slug(x) for x in v.name]
    created = clock(w.seed, "vendor-created", v.created[i], i)
    r = Rows()
    r.add(_day=v.created[i], _order=i, vendor_id=ids(*VENDOR_ID, i + 1).to_numpy(zero_copy_only=False),
          vendor_name=v.name[i], category=v.category[i],
          account_number=np.asarray([f"ACCT-{x:07d}" for x in rng.integers(10**6, 10**7, v.n)], dtype=object)[i],
          sla=np.asarray(SLA, dtype=object)[rng.integers(0, len(SLA), v.n)][i],
          contact_name=np.asarray([f"{a} {b}" for a, b in zip(first, last, strict=True)], dtype=object)[i],
          contact_email=np.asarray([f"{a.lower()}.{b.lower()}@{s}.com" for a, b, s in zip(first, last, slug,
                                                                                          strict=True)],
                                   dtype=object)[i],
          phone=np.asarray([f"(720) 555-{x:04d}" for x in rng.integers(100, 9999, v.n)], dtype=object)[i],
          website=np.asarray([f"https://www.{s}.com" for s in slug], dtype=object)[i],
          payment_terms=v.payment_terms[i], status="active", created_at=created, updated_at=created)
    r.emit(sinks["vendors"], "vendor_id", order="_order")
