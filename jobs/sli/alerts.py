"""``license.compliance.violation``: one event when an episode opens, one each time it worsens, one when it
closes, never one per day for a condition that persists (DOMAIN.md s. 4 Alerts, ARCHITECTURE principle 7).

Every event comes from rows of the SLI tables (``evidence.source_rows`` names them):

=========================  ===================================  ==========================================
violation_kind             episode                              from
=========================  ===================================  ==========================================
``shortfall``              a tenant's SKU with assigned >       ``processed.licence_position``
                           entitled on consecutive snapshots    (``shortfall_state``)
``billing_mismatch``       PSA billed quantity ≠ vendor seats   ``processed.licence_position``
                           by >= ``sli.billing_drift_min_seats`` (``drift_state``)
``install_shortfall``      devices with a title installed >     ``processed.licence_installs``
                           what its licences cover               (``install_state``)
``idle_seats``             a tenant's SKU with idle seats on    ``analytics.licence_utilisation``
                           consecutive monthly reports          (``idle_state``)
``renewal_with_idle_seats`` an NCE term renewing within         entitlements + position + utilisation
                           ``sli.renewal_alert_days`` with seats (:func:`jobs.sli.renewals.alerts`)
                           to cut (one per renewal)
=========================  ===================================  ==========================================

An episode also closes when its subject disappears from the next snapshot (the subscription was cancelled
or the client left). Ids: the event id hashes (type, subject, episode opening day, kind/SKU/state/day), the
episode id (type, subject, kind/SKU, opening day), so a rerun writes the same events; this stage replaces
its own outbox partitions of the days it evaluated (the run's days and the days whose rows changed), so a
rerun never duplicates one.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

from jobs.sli import catalogue as catalogue_mod
from jobs.sli import renewals
from jobs.sli.activity import ACTIVITY
from jobs.sli.common import iso, previous, touched_days
from jobs.sli.position import ENTITLEMENTS, INSTALLS, POSITION
from jobs.sli.savings import UTILISATION
from lakehouse.events import episode_id, make_event

if TYPE_CHECKING:  # pragma: no cover
    from jobs.sli.settings import SliSettings
    from lakehouse.context import RunContext

EVENT_TYPE = "license.compliance.violation"
SOURCE = "sli.alerts"
SUBSCRIBED = "processed.subscribed_skus"


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if v != v else v


def _int(x: Any) -> int | None:
    v = _num(x)
    return None if v is None else int(v)


def _event(kind: str, subject_key: str, row: dict, state: str, day: date, opened: Any, data: dict,
           evidence: dict, severity: str) -> dict:
    client = row["client_id"]
    subject = f"client:{client}"
    opened_iso = iso(opened)
    episode = {"id": episode_id(EVENT_TYPE, subject, f"{kind}:{subject_key}", opened_iso), "state": state,
               "opened": opened_iso}
    if state == "closed":
        episode["closed"] = day.isoformat()
    rule = f"{kind}:{subject_key}:{state}:{day.isoformat()}"
    return make_event(EVENT_TYPE, SOURCE, subject, day, opened_iso, rule,
                      {"client_id": client, "violation_kind": kind, "period": opened_iso, **data},
                      evidence, severity=severity, episode=episode)


def _severity(state: str) -> str:
    return "info" if state == "closed" else "warning"


def shortfall_events(rows: Iterable[dict]) -> list[dict]:
    """Shortfall episodes (``processed.licence_position`` rows with a ``shortfall_state``)."""
    out = []
    for r in rows:
        state = r.get("shortfall_state")
        if state not in ("opened", "worsened", "closed"):
            continue
        day = r["snapshot_date"]
        keys = {"client_id": r["client_id"], "sku_part_number": r["sku_part_number"], "dt": day.isoformat()}
        data = {"sku": r["sku_part_number"], "entitled": _int(r["entitled"]), "consumed": _int(r["assigned"]),
                "shortfall": _int(r["shortfall"]), "episode_max_shortfall": _int(r.get("shortfall_episode_max")),
                "unit_price": _num(r.get("unit_price")), "exposure_amount": _num(r.get("true_up_exposure")),
                "snapshot_date": day.isoformat()}
        if state == "closed":
            data["reason"] = r.get("_reason") or "entitled seats cover the assigned ones again"
        evidence = {"metric": "shortfall_seats", "value": _num(r["shortfall"]), "threshold": 0,
                    "comparison": "<=" if state == "closed" else ">",
                    "source_rows": [{"dataset": POSITION, "keys": keys},
                                    {"dataset": SUBSCRIBED, "keys": {"client_id": r["client_id"],
                                                                     "sku_id": r.get("sku_id"),
                                                                     "snapshot_date": day.isoformat()}}]}
        out.append(_event("shortfall", r["sku_part_number"], r, state, day, r["shortfall_episode_opened"], data,
                          evidence, _severity(state)))
    return out


def drift_events(rows: Iterable[dict], min_seats: int) -> list[dict]:
    """Billing drift episodes: PSA billed quantity ≠ the vendor's seats (``drift_state``)."""
    out = []
    for r in rows:
        state = r.get("drift_state")
        if state not in ("opened", "worsened", "closed"):
            continue
        day = r["snapshot_date"]
        drift = _int(r.get("billing_drift"))
        keys = {"client_id": r["client_id"], "sku_part_number": r["sku_part_number"], "dt": day.isoformat()}
        data = {"sku": r["sku_part_number"], "entitled": _int(r["entitled"]), "consumed": _int(r["assigned"]),
                "psa_quantity": _int(r.get("psa_quantity")), "vendor_quantity": _int(r["entitled"]),
                "billing_drift": drift, "unit_price": _num(r.get("unit_price")),
                "exposure_amount": (None if drift is None or _num(r.get("unit_price")) is None
                                    else round(max(-drift, 0) * _num(r["unit_price"]), 2)),
                "snapshot_date": day.isoformat()}
        evidence = {"metric": "abs_billing_drift_seats", "value": None if drift is None else float(abs(drift)),
                    "threshold": min_seats, "comparison": "<" if state == "closed" else ">=",
                    "source_rows": [{"dataset": POSITION, "keys": keys},
                                    {"dataset": "processed.agreement_additions",
                                     "keys": {"client_id": r["client_id"], "as_of": day.isoformat()}}]}
        out.append(_event("billing_mismatch", r["sku_part_number"], r, state, day, r["drift_episode_opened"], data,
                          evidence, _severity(state)))
    return out


def install_events(rows: Iterable[dict]) -> list[dict]:
    """Install shortfall episodes (``processed.licence_installs`` rows with an ``install_state``)."""
    out = []
    for r in rows:
        state = r.get("install_state")
        if state not in ("opened", "worsened", "closed"):
            continue
        day = r["snapshot_date"]
        keys = {"client_id": r["client_id"], "install_key": r["install_key"], "dt": day.isoformat()}
        data = {"sku": r.get("licence_skus") or r["install_key"], "product": r["install_key"],
                "installs": _int(r["installs"]), "entitled": _int(r["licensed_seats"]),
                "install_capacity": _int(r["install_capacity"]), "unlicensed_installs": _int(r["unlicensed_installs"]),
                "snapshot_date": day.isoformat()}
        evidence = {"metric": "unlicensed_installs", "value": _num(r["unlicensed_installs"]), "threshold": 0,
                    "comparison": "<=" if state == "closed" else ">",
                    "source_rows": [{"dataset": INSTALLS, "keys": keys},
                                    {"dataset": "processed.software_inventory",
                                     "keys": {"client_id": r["client_id"], "as_of": day.isoformat()}}]}
        out.append(_event("install_shortfall", r["install_key"], r, state, day, r["install_episode_opened"], data,
                          evidence, _severity(state)))
    return out


def idle_events(rows: Iterable[dict], idle_days: int) -> list[dict]:
    """Idle-seat episodes of a tenant's SKU (``analytics.licence_utilisation`` rows with an ``idle_state``)."""
    out = []
    for r in rows:
        state = r.get("idle_state")
        if state not in ("opened", "worsened", "closed"):
            continue
        day = r["report_date"]
        keys = {"client_id": r["client_id"], "sku_part_number": r["sku_part_number"], "dt": day.isoformat()}
        data = {"sku": r["sku_part_number"], "entitled": _int(r.get("entitled")), "consumed": _int(r.get("assigned")),
                "active": _int(r.get("active_users")), "idle": _int(r.get("idle_seats")),
                "unit_price": _num(r.get("unit_price")), "exposure_amount": _num(r.get("idle_cost")),
                "report_date": day.isoformat()}
        evidence = {"metric": f"users_idle_{idle_days}d", "value": _num(r.get("idle_seats")), "threshold": 0,
                    "comparison": "<=" if state == "closed" else ">",
                    "source_rows": [{"dataset": UTILISATION, "keys": keys},
                                    {"dataset": ACTIVITY, "keys": {"client_id": r["client_id"],
                                                                   "sku_part_number": r["sku_part_number"],
                                                                   "dt": day.isoformat(), "idle": True}}]}
        out.append(_event("idle_seats", r["sku_part_number"], r, state, day, r["idle_episode_opened"], data,
                          evidence, _severity(state)))
    return out


def renewal_events(rows: Iterable[dict], alert_days: int) -> list[dict]:
    """One event per (entitlement, renewal) with seats to cut, on its alert day."""
    out = []
    for r in rows:
        day, renewal = r["as_of"], r["next_renewal"]
        ent = r["entitlement_id"]
        data = {"sku": r["sku_part_number"], "entitlement_id": ent, "entitled": _int(r["seats"]),
                "consumed": _int(r.get("assigned_seats")), "active": _int(r.get("needed_seats")),
                "idle": _int(r.get("idle_seats")), "cuttable_seats": _int(r["cuttable_seats"]),
                "unit_price": _num(r.get("unit_price")), "exposure_amount": _num(r.get("cut_saving_term")),
                "monthly_saving": _num(r.get("cut_saving_monthly")), "renewal_date": renewal.isoformat(),
                "window_closes": r["next_window_closes"].isoformat() if r.get("next_window_closes") else None}
        sources = [{"dataset": ENTITLEMENTS, "keys": {"entitlement_id": ent, "as_of": day.isoformat()}}]
        if r.get("position_snapshot"):
            sources.append({"dataset": POSITION, "keys": {"client_id": r["client_id"],
                                                           "sku_part_number": r["sku_part_number"],
                                                           "dt": r["position_snapshot"].isoformat()}})
        if r.get("activity_report"):
            sources.append({"dataset": UTILISATION, "keys": {"client_id": r["client_id"],
                                                              "sku_part_number": r["sku_part_number"],
                                                              "dt": r["activity_report"].isoformat()}})
        evidence = {"metric": "cuttable_seats", "value": _num(r["cuttable_seats"]), "threshold": 0,
                    "comparison": ">", "source_rows": sources,
                    "drivers": [{"factor": "days_to_renewal", "change": f"{(renewal - day).days} d (alert at "
                                                                         f"{alert_days} d)"}]}
        subject = f"client:{r['client_id']}"
        out.append(make_event(EVENT_TYPE, SOURCE, subject, day, renewal.isoformat(), f"renewal:{ent}",
                              {"client_id": r["client_id"], "violation_kind": "renewal_with_idle_seats",
                               "period": renewal.isoformat(), **data},
                              evidence, severity="warning",
                              episode={"id": episode_id(EVENT_TYPE, subject, f"renewal:{ent}", renewal.isoformat()),
                                       "state": "opened", "opened": day.isoformat()}))
    return out


def vanished(prev_rows: list[dict], cur_keys: set[tuple], key: tuple[str, ...], state_col: str,
             state_cols: tuple[str, ...], day: date, reason: str) -> list[dict]:
    """Rows closing the ``state_col`` episodes still open on the snapshot before ``day`` whose subject is absent
    on ``day`` (the other episode states of the row are cleared, so only this one closes)."""
    out = []
    for r in prev_rows:
        if r.get(state_col) in (None, "closed") or tuple(r[k] for k in key) in cur_keys:
            continue
        closed = dict(r)
        closed.update(dict.fromkeys(state_cols))
        closed.update({state_col: "closed", "snapshot_date": day, "report_date": day, "_reason": reason})
        for c in ("shortfall", "unlicensed_installs", "idle_seats"):
            if c in closed:
                closed[c] = 0
        out.append(closed)
    return out


# ---- the stage ---------------------------------------------------------------------------------------------
def _rows(ctx: RunContext, name: str, days: list[str]) -> list[dict]:
    return ctx.table(name, {"dt": days}).to_pyarrow().to_pylist() if days else []


def _episode_rows(ctx: RunContext, name: str, days: list[str], calendar: list[str], key: tuple[str, ...],
                  state_cols: tuple[str, ...], date_col: str, reason: str) -> list[dict]:
    """The rows of ``days`` plus, for each of those days, closing rows for the subjects that vanished."""
    wanted = [d for d in days if d in set(calendar)]
    prevs = sorted({p for d in wanted if (p := previous(calendar, d))})
    rows = _rows(ctx, name, sorted(set(wanted) | set(prevs)))
    by_day: dict[str, list[dict]] = {}
    for r in rows:
        by_day.setdefault(r[date_col].isoformat(), []).append(r)
    out = [r for d in wanted for r in by_day.get(d, [])]
    for d in wanted:
        p = previous(calendar, d)
        if p is None:
            continue
        cur = {tuple(r[k] for k in key) for r in by_day.get(d, [])}
        for state_col in state_cols:
            out += vanished(by_day.get(p, []), cur, key, state_col, state_cols, date.fromisoformat(d), reason)
    return out


def run(ctx: RunContext) -> None:
    """Emit license.compliance.violation for the episodes that opened, worsened or closed on the days this
    run evaluates, and for renewals whose alert day is one of them."""
    cfg: SliSettings = ctx.config
    cat = catalogue_mod.load(cfg.catalogue)
    end = ctx.end.isoformat()
    mine = (POSITION, INSTALLS, UTILISATION)
    touched = touched_days(ctx, (*mine, ENTITLEMENTS))
    calendars = {name: [d for d in ctx.partition_values(name, "dt") if d <= end] for name in mine}
    if touched is None:
        first = min([c[0] for c in calendars.values() if c] + [ctx.days[0]])
        days = sorted({d for c in calendars.values() for d in c} | set(ctx.days))
        days = [d for d in days if d >= first]
    else:
        days = touched
    pos_rows = _episode_rows(ctx, POSITION, days, calendars[POSITION], ("client_id", "sku_part_number"),
                             ("shortfall_state", "drift_state"),
                             "snapshot_date", "the subscription is no longer reported")
    inst_rows = _episode_rows(ctx, INSTALLS, days, calendars[INSTALLS], ("client_id", "install_key"),
                              ("install_state",), "snapshot_date",
                              "no install or licence reported any more")
    util_rows = _episode_rows(ctx, UTILISATION, days, calendars[UTILISATION], ("client_id", "sku_part_number"),
                              ("idle_state",), "report_date", "no seats reported any more")
    events = (shortfall_events(pos_rows) + drift_events(pos_rows, cfg.billing_drift_min_seats)
              + install_events(inst_rows) + idle_events(util_rows, cfg.idle_days))
    if days:
        first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
        facts = renewals.read_facts(ctx, first, last, cat)
        due = renewals.alerts(renewals.entitlement_history(ctx, last), facts, days, cat, cfg,
                              renewals.client_name_map(ctx, last))
        events += renewal_events(due, cfg.renewal_alert_days)
    events = _unique(events)
    kinds: dict[str, int] = {}
    for e in events:
        kinds[e["data"]["violation_kind"]] = kinds.get(e["data"]["violation_kind"], 0) + 1
    ctx.count("events.outbox").notes.append(
        f"{len(events)} {EVENT_TYPE} event(s) over {len(days)} day(s): "
        + (", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"))
    ctx.emit(EVENT_TYPE, events, days)


def _unique(events: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for e in events:
        seen.setdefault(e["id"], e)
    return sorted(seen.values(), key=lambda e: (e["time"], e["id"]))
