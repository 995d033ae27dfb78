"""SPO's daily stages on a lake of their own (processed rows written directly, a lead scorer promoted in its
registry): a backfill, then a day run again alone and the whole range run again give identical tables and the
same events, never a duplicate; the lines of every proposal sum to its totals."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

import schemas
from lakehouse.context import date_range
from lakehouse.lake import Lake
from lakehouse.runner import run_pipeline
from tests.conftest import make_settings
from tests.spo.conftest import arrow

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("spo-private-lake")]
FIRST, LAST = date(2024, 3, 1), date(2024, 3, 31)
DAILY = ["spo.lead_score", "spo.forecast", "spo.opportunities", "spo.proposals"]
TABLES = ["analytics.lead_scores", "analytics.pipeline_forecast", "analytics.sales_opportunities",
          "analytics.proposals", "analytics.proposal_lines"]


def _rows() -> dict[str, list[dict]]:
    leads, acts, opps = [], [], []
    for i in range(1, 9):
        lid, created = f"LD-{i:06d}", date(2024, 1, 1) + timedelta(days=7 * i)
        base = {"lead_id": lid, "company_name": f"Company {i} & Co", "industry": ["healthcare", "retail"][i % 2],
                "employees": 10 + 3 * i, "endpoints": 12 + 3 * i, "locations": 1 + i % 2,
                "compliance_needs": ["HIPAA", "none"][i % 2], "current_it_model": ["break_fix", "in_house"][i % 2],
                "lead_source": ["referral", "website"][i % 2], "owner": "Ann Rep", "email_opens": i, "email_clicks": 0,
                "web_visits": 2 * i, "form_submissions": 1, "calls": 1, "meetings": i % 3, "assessment_done": False,
                "created_at": f"{created}T10:00:00"}
        leads.append({**base, "status": "new", "updated_at": f"{created}T22:00:00", "dt": created.isoformat()})
        q = created + timedelta(days=10)
        leads.append({**base, "status": "qualified" if i % 2 else "working", "updated_at": f"{q}T22:00:00",
                      "dt": q.isoformat()})
        acts.append({"activity_id": f"AC-{i:07d}", "activity_type": "email", "direction": "outbound", "lead_id": lid,
                     "opportunity_id": f"OP-{i:06d}" if i % 2 else None, "owner": "Ann Rep",
                     "occurred_at": f"{q}T15:00:00", "subject": "Hello", "outcome": "sent", "opened": True,
                     "clicked": False, "dt": q.isoformat()})
        if i % 2:
            deal = {"opportunity_id": f"OP-{i:06d}", "lead_id": lid, "opportunity_name": f"Managed IT - Company {i}",
                    "opportunity_type": "new_logo", "confidence": "medium", "mrr": 1500 + 100 * i,
                    "one_time_value": 800, "expected_close_date": (q + timedelta(days=40)).isoformat(),
                    "owner": "Ann Rep", "created_at": f"{q}T20:00:00", "last_activity_at": f"{q}T15:00:00"}
            opps.append({**deal, "stage": "qualified", "updated_at": f"{q}T21:00:00", "dt": q.isoformat()})
            if i == 1:  # won in March
                opps.append({**deal, "stage": "won", "closed_at": "2024-03-12T21:00:00",
                             "updated_at": "2024-03-12T21:01:00", "dt": "2024-03-12"})
    clients, agreements, additions, lines, endpoints = [], [], [], [], []
    for c in range(1, 7):
        cid = f"CL-{c:05d}"
        clients.append({"client_id": cid, "client_name": f"Client {c}",
                        "client_type": "break_fix" if c == 6 else "managed",
                        "industry": "retail", "employee_count": 8 + c, "hourly_rate": 150, "net_terms": 30,
                        "billing_cycle": "monthly", "currency": "USD", "status": "active",
                        "created_at": "2022-01-01T10:00:00", "updated_at": "2024-01-01T10:00:00"})
        kind = "break_fix" if c == 6 else "managed_services"
        agreements.append({"agreement_id": f"AG-{c:05d}", "client_id": cid, "agreement_name": f"Agreement {c}",
                           "agreement_type": kind, "status": "active", "start_date": "2022-07-01",
                           "end_date": None if kind == "break_fix" else ["2024-06-30", "2024-12-31"][c % 2],
                           "term_months": None if kind == "break_fix" else 12, "renewal_mode": "auto",
                           "renewal_term_months": 12, "notice_period_days": 30, "billing_cycle": "monthly",
                           "mrr": 0 if kind == "break_fix" else 900 + 10 * c, "hourly_rate": 150,
                           "sla_tier": "standard", "created_at": "2022-06-01T10:00:00",
                           "updated_at": "2024-01-01T10:00:00"})
        if c <= 3 and kind != "break_fix":
            additions.append({"addition_id": f"AD-{c:06d}", "agreement_id": f"AG-{c:05d}", "client_id": cid,
                              "product_code": "EDR", "product_name": "Managed EDR", "quantity": 10, "unit_cost": 4.2,
                              "unit_price": 8.5, "effective_date": "2022-07-01", "created_at": "2022-06-20T10:00:00",
                              "updated_at": "2024-01-01T10:00:00"})
        endpoints.append({"snapshot_date": "2024-02-28", "client_id": cid, "workstations": 9 + c, "servers": 1,
                          "network_devices": 2, "total_endpoints": 12 + c, "dt": "2024-02-28"})
    for m in range(1, 13):
        month = (date(2023, 3, 1) + pd.DateOffset(months=m)).date()
        lines.append({"invoice_line_id": f"IL-{m:08d}", "invoice_id": f"IN-{m:07d}", "client_id": "CL-00006",
                      "line_type": "labour", "product_code": "LABOR-TM", "description": "Time and materials labour",
                      "quantity": 10, "unit_price": 150, "amount": 1500, "service_period_start": month.isoformat(),
                      "service_period_end": month.isoformat(), "created_at": f"{month}T06:00:00",
                      "dt": month.isoformat()})
    return {"processed.leads": leads, "processed.activities": acts, "processed.opportunities": opps,
            "processed.clients": clients, "processed.agreements": agreements,
            "processed.agreement_additions": additions, "processed.invoice_lines": lines,
            "processed.managed_endpoints": endpoints}


@pytest.fixture(scope="module")
def lake_settings(tmp_path_factory):
    from lakehouse.model_registry import ModelRegistry
    from models.spo import leads as M
    from tests.spo.test_leads import synthetic_snapshots

    home = tmp_path_factory.mktemp("spo-lake")
    settings = make_settings(home, MSP_QUALITY__CHECKPOINT="off")
    lake = Lake.from_settings(settings)
    for name, rows in _rows().items():
        lake.replace(schemas.get(name), arrow(name, rows), run_id="test-setup", stage="test")
    result = M.train(synthetic_snapshots(160, seed=4), test_share=0.34, horizon_days=90, min_train_positives=5,
                     params={"max_iter": 60, "max_depth": 3, "min_samples_leaf": 20}, calibration="sigmoid", folds=3,
                     random_state=7, baseline_c=1.0)
    registry = ModelRegistry(lake, M.MODEL_NAME)
    registry.save(result.scorer, version="20240229-test", metrics=result.metrics, primary_metric="pr_auc")
    registry.promote("20240229-test")
    first = run_pipeline(settings, date_range(FIRST, LAST), stages=DAILY, refresh_catalog=False)
    assert first.ok, [(s.name, s.error) for s in first.stages]
    return settings


def snapshot(settings) -> dict[str, pd.DataFrame]:
    lake = Lake.from_settings(settings)
    out = {t: lake.read_pandas(schemas.get(t)).astype(str).sort_values(
        list(schemas.get(t).primary_key)).reset_index(drop=True) for t in TABLES}
    events = lake.read_pandas(schemas.get("events.outbox"))
    out["events"] = events[events["event_type"] == "sales.opportunity.identified"].astype(str).sort_values(
        "event_id").reset_index(drop=True)
    return out


def test_rerunning_a_day_and_the_range_gives_identical_tables_and_no_duplicate_events(lake_settings):
    before = snapshot(lake_settings)
    assert len(before["analytics.lead_scores"]) and len(before["analytics.proposals"]) and len(before["events"])
    kinds = set(before["analytics.sales_opportunities"]["opportunity_kind"])
    assert {"renewal", "tm_to_managed", "whitespace", "stalled_deal"} <= kinds
    assert before["events"]["event_id"].is_unique
    assert sorted(before["events"]["event_id"]) == sorted(before["analytics.sales_opportunities"]["event_id"])
    forced = make_settings(lake_settings.home, MSP_QUALITY__CHECKPOINT="off", MSP_SKIP_UNCHANGED="false")
    for days in ([date(2024, 3, 12)], date_range(FIRST, LAST)):
        again = run_pipeline(forced, days, stages=DAILY, refresh_catalog=False)
        assert again.ok and all(s.status == "ok" for s in again.stages)
        after = snapshot(lake_settings)
        for name, frame_ in before.items():
            pd.testing.assert_frame_equal(after[name], frame_, obj=name)


def test_every_proposal_sums_to_its_lines(lake_settings):  # after a backfill (and maybe reruns: the same)
    from decimal import Decimal

    lake = Lake.from_settings(lake_settings)
    proposals = lake.read_pandas(schemas.get("analytics.proposals"))
    lines = lake.read_pandas(schemas.get("analytics.proposal_lines"))
    assert len(proposals) and set(lines["proposal_id"]) == set(proposals["proposal_id"])
    for p in proposals.to_dict("records"):
        mine = lines[lines["proposal_id"] == p["proposal_id"]]
        assert sum(mine.loc[mine["billing"] == "recurring", "amount"], Decimal(0)) == p["monthly_total"]
        assert sum(mine.loc[mine["billing"] == "one_time", "amount"], Decimal(0)) == p["one_time_total"]
        assert len(mine) == p["line_count"]
    assert {"new_logo", "renewal", "tm_to_managed", "whitespace"} <= set(proposals["proposal_kind"])


def test_the_commands_read_what_the_stages_wrote(lake_settings, capsys):
    from jobs.spo import cli

    title, _, rows = cli.leads_table(lake_settings, 3)
    assert "scored on 2024-03-31" in title and len(rows) == 3 and rows[0][0] == "1"
    tables = cli.forecast_tables(lake_settings)
    assert tables[0][0] == "Bookings forecast made on 2024-03-31" and len(tables[0][2]) == 6  # 3 months x 2 methods
    proposals = Lake.from_settings(lake_settings).read_pandas(schemas.get("analytics.proposals"))
    generated = proposals[proposals["opportunity_id"].str.startswith("SO-")].iloc[0]["opportunity_id"]
    record, lines = cli.find_proposal(lake_settings, generated)
    from jobs.spo.proposal import render

    text = render(record, lines, lake_settings.model("spo"))
    assert f"reference PR-{generated}" in text and f"**${record['monthly_total']:,.2f}**" in text
    with pytest.raises(LookupError, match="no proposal for OP-999999"):
        cli.find_proposal(lake_settings, "OP-999999")
