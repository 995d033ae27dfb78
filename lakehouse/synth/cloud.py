"""The MSP's own cloud bill as FinOps FOCUS 1.0 rows: hourly compute, daily storage and services.

Resources belong to departments through the ``business_unit`` tag (a few are untagged, as in real
estates). Anomalies are planted like in expenses: spikes (a resource's usage jumps for a few days), level
shifts (a resource's usage steps up and stays) and new services (a service the department never used).
"""

from __future__ import annotations

import json

import numpy as np

from lakehouse.synth.rng import stream
from lakehouse.synth.textfmt import NULL
from lakehouse.synth.timeline import DAY

#: provider, service, category, resource type, unit, list price per unit, hourly?, typical units per period
SERVICES = (
    ("AWS", "Amazon Elastic Compute Cloud", "Compute", "Instance", "Hours", 0.0832, True, 1.0),
    ("AWS", "Amazon Relational Database Service", "Databases", "DBInstance", "Hours", 0.171, True, 1.0),
    ("Microsoft", "Virtual Machines", "Compute", "Virtual machine", "Hours", 0.096, True, 1.0),
    ("AWS", "Amazon Elastic Block Store", "Storage", "volume", "GB-Mo", 0.08, False, 500.0),
    ("AWS", "Amazon Simple Storage Service", "Storage", "bucket", "GB-Mo", 0.023, False, 4000.0),
    ("AWS", "AWS Backup", "Storage", "backup vault", "GB-Mo", 0.05, False, 3000.0),
    ("AWS", "Amazon CloudWatch", "Management and Governance", "log group", "GB", 0.50, False, 12.0),
    ("AWS", "Elastic Load Balancing", "Networking", "loadbalancer", "LCU-Hours", 0.008, False, 240.0),
    ("Microsoft", "Storage Accounts", "Storage", "Storage account", "GB-Mo", 0.0184, False, 3000.0),
    ("Microsoft", "Log Analytics", "Management and Governance", "Workspace", "GB", 2.30, False, 4.0),
    ("Microsoft", "Azure SQL Database", "Databases", "SQL database", "Hours", 0.50, False, 24.0),
)
NEW_SERVICES = (
    ("AWS", "Amazon Bedrock", "AI and Machine Learning", "model", "1M tokens", 3.00, False, 60.0),
    ("Microsoft", "Azure OpenAI Service", "AI and Machine Learning", "Cognitive account", "1M tokens", 2.00, False,
     90.0),
    ("AWS", "Amazon GuardDuty", "Security", "detector", "GB", 1.00, False, 180.0),
    ("Microsoft", "Microsoft Sentinel", "Security", "Workspace", "GB", 2.46, False, 90.0),
)
REGIONS = {"AWS": (("us-west-2", "US West (Oregon)"), ("us-east-1", "US East (N. Virginia)")),
           "Microsoft": (("westus2", "West US 2"), ("centralus", "Central US"))}
DEPT_P = {"hosting": 0.5, "security_ops": 0.15, "service_desk": 0.12, "projects": 0.1, "finance_admin": 0.05,
          "sales_marketing": 0.08}
SCALE = 10**11  # costs in units of 1e-11 USD
QSCALE = 10**15


def plan(w) -> None:
    sc, tl = w.scale, w.tl
    rng = stream(w.seed, "cloud")
    H = tl.n_days
    hourly = [i for i, s in enumerate(SERVICES) if s[6]]
    daily = [i for i, s in enumerate(SERVICES) if not s[6]]
    svc = np.concatenate([rng.choice(hourly, sc.cloud_hourly_resources), rng.choice(daily, sc.cloud_daily_resources)])
    n = len(svc)
    depts = list(DEPT_P)
    dept = rng.choice(len(depts), n, p=np.asarray(list(DEPT_P.values())))
    tagged = rng.random(n) > 0.08
    env = rng.choice(3, n, p=[0.6, 0.25, 0.15])  # prod, dev, staging
    created = np.where(rng.random(n) < 0.75, -rng.integers(1, 900, n), rng.integers(0, H, n))
    size = np.asarray([SERVICES[s][7] for s in svc]) * rng.lognormal(0, 0.7, n)
    growth = rng.normal(0.15, 0.1, n)  # per year
    committed = np.asarray([SERVICES[s][6] for s in svc]) & (env == 0) & (rng.random(n) < 0.45)
    client = np.where((np.asarray(depts)[dept] == "hosting") & (rng.random(n) < 0.6),
                      rng.integers(0, w.clients.n_initial, n), -1)
    # anomalies on existing daily resources, and new-service resources
    k = sc.anomalies_per_kind
    from lakehouse.synth.spend import anomaly_windows

    daily_idx = np.flatnonzero(~np.asarray([SERVICES[s][6] for s in svc]) & tagged & (created < 0))
    anomalies = []
    for d in anomaly_windows(w, "cloud-spike", k):
        anomalies.append(("spike", int(daily_idx[rng.integers(0, len(daily_idx))]), int(d),
                          int(d + rng.integers(0, 3)), float(rng.uniform(6, 12))))
    for d in anomaly_windows(w, "cloud-shift", k):
        anomalies.append(("level_shift", int(daily_idx[rng.integers(0, len(daily_idx))]), int(d), NULL,
                          float(rng.uniform(1.6, 2.2))))
    new_days = anomaly_windows(w, "cloud-new", k)
    new_svc = len(SERVICES) + rng.integers(0, len(NEW_SERVICES), len(new_days))
    base = n
    svc = np.concatenate([svc, new_svc])
    dept = np.concatenate([dept, rng.choice([0, 1, 2], len(new_days))])
    tagged = np.concatenate([tagged, np.ones(len(new_days), bool)])
    env = np.concatenate([env, np.zeros(len(new_days), int)])
    created = np.concatenate([created, new_days])
    allsvc = SERVICES + NEW_SERVICES
    size = np.concatenate([size, np.asarray([allsvc[s][7] for s in new_svc]) * rng.lognormal(0, 0.3, len(new_days))])
    growth = np.concatenate([growth, np.zeros(len(new_days))])
    committed = np.concatenate([committed, np.zeros(len(new_days), bool)])
    client = np.concatenate([client, np.full(len(new_days), -1)])
    for j, d in enumerate(new_days):
        anomalies.append(("new_service", base + j, int(d), NULL, 1.0))
    n = len(svc)
    region = rng.integers(0, 2, n)
    ids_ = [_resource_id(rng, allsvc[s], i, REGIONS[allsvc[s][0]][region[i]][0]) for i, s in enumerate(svc)]
    apps = np.asarray(["PSA", "RMM", "Backup", "ClientPortal", "Monitoring", "Website", "Reporting", "SIEM"],
                      dtype=object)[rng.integers(0, 8, n)]
    tags = []
    for i in range(n):  # one JSON document per resource
        if not tagged[i]:
            tags.append(None)
            continue
        t = {"application": str(apps[i]), "environment": ("prod", "dev", "staging")[env[i]],
             "business_unit": depts[dept[i]]}
        if client[i] >= 0:
            t["client_id"] = f"CL-{client[i] + 1:05d}"
        tags.append(json.dumps(t))
    w.extra["cloud"] = {"svc": svc, "dept": dept, "tagged": tagged, "env": env, "created": created, "size": size,
                        "growth": growth, "committed": committed, "region": region, "resource_id": ids_,
                        "tags": np.asarray(tags, dtype=object), "anomalies": anomalies, "depts": depts}
    # expected monthly cost per department (for budgets): list cost without anomalies
    months = np.arange(tl.n_months)
    exp = {}
    days_in = np.array([min(tl.month_range(m)[1], H) - tl.month_range(m)[0] for m in months])
    for i in range(base):
        s = allsvc[svc[i]]
        per_day = s[5] * (24 * (1 if env[i] == 0 else 0.3) if s[6] else size[i] / (30 if s[4] == "GB-Mo" else 1))
        per_day *= 0.72 if committed[i] else 1
        if not tagged[i]:
            continue
        d = depts[dept[i]]
        exp.setdefault(d, np.zeros(len(months)))
        exp[d] += per_day * days_in * 100 * (tl.first_day(months) >= created[i])
    w.extra["cloud_expected"] = exp


def _resource_id(rng, s, i, region) -> str:
    prov, name, rtype = s[0], s[1], s[3]
    acct = 347410479675 + (i % 3) * 1111
    if prov == "AWS":
        short = {"Amazon Elastic Compute Cloud": "ec2", "Amazon Relational Database Service": "rds",
                 "Amazon Elastic Block Store": "ec2", "Amazon Simple Storage Service": "s3", "AWS Backup": "backup",
                 "Amazon CloudWatch": "logs", "Elastic Load Balancing": "elasticloadbalancing",
                 "Amazon Bedrock": "bedrock", "Amazon GuardDuty": "guardduty"}[name]
        return f"arn:aws:{short}:{region}:{acct}:{rtype.replace(' ', '')}/{rtype[:3].lower()}-{i:05d}" \
               f"{rng.integers(16**6, 16**7):x}"
    return (f"/subscriptions/64e355d7-997c-491d-b0c1-8414dccf{i % 7:04d}/resourcegroups/msp-{i % 5}/providers/"
            f"microsoft.{name.split()[0].lower()}/{rtype.replace(' ', '').lower()}s/res{i:05d}")


def simulate_month(w, m: int, sinks, book) -> None:
    tl, cl = w.tl, w.extra["cloud"]
    d0, d1 = tl.month_range(m)
    d1 = min(d1, tl.n_days)
    if d0 >= d1:
        return
    rng = stream(w.seed, "cloud-usage", m)
    allsvc = SERVICES + NEW_SERVICES
    days = np.arange(d0, d1)
    hourly = np.asarray([allsvc[s][6] for s in cl["svc"]])
    alive = (cl["created"][:, None] <= days[None, :])
    # hourly rows: prod all day, dev and staging during business hours on business days
    hi, di = np.nonzero(alive & hourly[:, None])
    day_h = days[di]
    hours = np.where(cl["env"][hi] == 0, 24, np.where(w.tl.business[day_h], 9, 0))
    r_h = np.repeat(hi, hours)
    d_h = np.repeat(day_h, hours)
    first = np.cumsum(hours) - hours
    off = np.arange(len(r_h)) - np.repeat(first, hours)
    hour = np.where(cl["env"][r_h] == 0, off, 15 + off)
    qty_h = np.ones(len(r_h))
    start_h = d_h * DAY + hour * 3600
    # daily rows: usage with growth, weekly pattern and noise
    ri, dj = np.nonzero(alive & ~hourly[:, None])
    d_d = days[dj]
    years = (d_d - np.maximum(cl["created"][ri], 0)) / 365
    base = cl["size"][ri] * (1 + cl["growth"][ri] * years)
    unit = np.asarray([allsvc[s][4] for s in cl["svc"][ri]])
    base = np.where(unit == "GB-Mo", base / 30, base)
    weekly = np.where(w.tl.dow[d_d] < 5, 1.0, 0.7)
    qty_base = base * np.where(unit == "GB-Mo", 1.0, weekly) * rng.lognormal(0, 0.08, len(ri))
    mult = np.ones(len(ri))
    anomaly = np.full(len(ri), -1)
    for j, (kind, res, s, e, x) in enumerate(cl["anomalies"]):
        if kind == "new_service":
            hit = ri == res
        else:
            end = e if e != NULL else 10**9
            hit = (ri == res) & (d_d >= s) & (d_d <= end)
        mult = np.where(hit & (kind != "new_service"), x, mult)
        anomaly = np.where(hit, j, anomaly)
    qty_d = qty_base * mult
    start_d = d_d * DAY
    res = np.concatenate([r_h, ri])
    start = np.concatenate([start_h, start_d])
    length = np.concatenate([np.full(len(r_h), 3600), np.full(len(ri), DAY)])
    qty = np.concatenate([qty_h, qty_d])
    qty_normal = np.concatenate([qty_h, qty_base])
    anom = np.concatenate([np.full(len(r_h), -1), anomaly])
    price = np.asarray([allsvc[s][5] for s in cl["svc"]])[res]
    q_int = np.round(qty * 1e9).astype(np.int64) * 10**6  # 9 significant decimals, shown with 15
    list_cost = np.round(q_int.astype(float) / QSCALE * price * SCALE).astype(np.int64)
    committed = cl["committed"][res]
    eff = np.where(committed, np.round(list_cost * 0.72).astype(np.int64), list_cost)
    normal_cost = np.where(committed, np.round(qty_normal * price * SCALE * 0.72), np.round(qty_normal * price * SCALE))
    day = start // DAY
    book.cloud(day, eff, normal_cost.astype(np.int64), anom, cl["dept"][res], cl["tagged"][res])
    order = np.lexsort((res, start))
    _emit(w, sinks, {k: v[order] for k, v in {"res": res, "start": start, "length": length, "q": q_int, "price": price,
                                                     "list_cost": list_cost, "eff": eff, "committed": committed,
                                                     "day": day}.items()})


def _emit(w, sinks, f) -> None:
    tl, cl = w.tl, w.extra["cloud"]
    allsvc = SERVICES + NEW_SERVICES
    n = len(f["res"])
    if not n:
        return
    seq = w.state.get("focus_seq", 10_000)
    w.state["focus_seq"] = seq + n
    res = f["res"]
    svc = cl["svc"][res]
    S = np.asarray(allsvc, dtype=object)
    prov = S[svc, 0]
    aws = prov == "AWS"
    m = tl.month_of(f["day"])
    bp_start, bp_end = tl.first_day(m) * DAY, tl.first_day(m + 1) * DAY
    region = cl["region"][res]
    reg_id = np.where(aws, np.asarray([r[0] for r in REGIONS["AWS"]], dtype=object)[region],
                      np.asarray([r[0] for r in REGIONS["Microsoft"]], dtype=object)[region])
    reg_name = np.where(aws, np.asarray([r[1] for r in REGIONS["AWS"]], dtype=object)[region],
                        np.asarray([r[1] for r in REGIONS["Microsoft"]], dtype=object)[region])
    price_text = np.asarray([_price(p) for p in S[:, 5]], dtype=object)[svc]
    unit = S[svc, 4]
    desc = np.asarray([f"${_price(s[5])} per {s[4]} for {s[1]}" for s in allsvc], dtype=object)[svc]
    committed = f["committed"]
    sku = np.asarray([f"SKU{j:04d}{s[0][:1]}" for j, s in enumerate(allsvc)], dtype=object)[svc]
    compute_az = (S[svc, 2] == "Compute") & aws
    empty = np.full(n, None, dtype=object)
    values = {
        "availability_zone": np.where(compute_az, reg_id + "a", empty),
        "billed_cost": f["eff"], "billing_account_id": np.where(aws, "123456789012",
                                                                 "/providers/Microsoft.Billing/billingAccounts/8611537"),
        "billing_account_name": np.full(n, "North Star IT", dtype=object), "billing_currency": "USD",
        "billing_period_end": bp_end, "billing_period_start": bp_start, "charge_category": "Usage",
        "charge_class": None, "charge_description": desc,
        "charge_frequency": np.full(n, "Usage-Based", dtype=object), "charge_period_end": f["start"] + f["length"],
        "charge_period_start": f["start"],
        "commitment_discount_category": np.where(committed, "Spend", empty),
        "commitment_discount_id": np.where(committed, "arn:aws:savingsplans::123456789012:savingsplan/"
                                                      "7a1c5e2d-4b8f-4e0a-9c3d-2f6b8a1e5d90", empty),
        "commitment_discount_name": np.where(committed, "Compute Savings Plan 3yr", empty),
        "commitment_discount_status": np.where(committed, "Used", empty),
        "commitment_discount_type": np.where(committed, "Savings Plan", empty),
        "consumed_quantity": f["q"], "consumed_unit": unit, "contracted_cost": f["list_cost"],
        "contracted_unit_price": np.round(f["price"] * SCALE).astype(np.int64), "effective_cost": f["eff"],
        "invoice_issuer_name": np.where(aws, "Amazon Web Services, Inc.", "Microsoft").astype(object),
        "list_cost": f["list_cost"], "list_unit_price": price_text,
        "pricing_category": np.where(committed, "Committed", "Standard").astype(object),
        "pricing_quantity": f["q"] // 10**4, "pricing_unit": unit, "provider_name": prov,
        "publisher_name": np.where(aws, "Amazon Web Services, Inc.", "Microsoft").astype(object),
        "region_id": reg_id, "region_name": reg_name,
        "resource_id": np.asarray(cl["resource_id"], dtype=object)[res],
        "resource_name": np.where(aws, empty, np.asarray([r.rsplit("/", 1)[-1] for r in cl["resource_id"]],
                                                         dtype=object)[res]),
        "resource_type": S[svc, 3], "service_category": S[svc, 2], "id": seq + np.arange(n),
        "service_name": S[svc, 1], "sku_id": sku, "sku_price_id": sku + ".STD",
        "sub_account_id": np.where(aws, "347410479675", "/subscriptions/64e355d7-997c-491d-b0c1-8414dccfcf42"),
        "sub_account_name": np.where(aws, "msp-production", "MSP Azure Production").astype(object),
        "tags": cl["tags"][res],
    }
    values = {k: (v.astype(object) if isinstance(v, np.ndarray) and v.dtype.kind == "U" else v)
              for k, v in values.items()}
    sinks["focus_costs"].add(f["day"], f["start"] * 10_000 + (res % 10_000), **values)


def _price(p: float) -> str:
    text = f"{p:.10f}".rstrip("0").rstrip(".")
    return text or "0"
