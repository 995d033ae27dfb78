"""VCM on the shared tiny pipeline lake (read-only): the register against the planted truth, the reminders,
SQL over the catalog, the demo questions and the read-only commands."""

from __future__ import annotations

import csv
import json
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

import schemas
from jobs.vcm import AGENT
from jobs.vcm import cli as vcm_cli
from lakehouse.lake import Lake

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lake(pipeline_lake):
    return pipeline_lake, Lake.from_settings(pipeline_lake)


def _truth(settings):
    with open(Path(settings.truth_root) / "contract_documents.csv", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_register_matches_the_truth(lake):
    settings, lk = lake
    truth = _truth(settings)
    reg = lk.read_pandas(schemas.get("processed.contract_register")).set_index("file_name")
    pages = lk.read_pandas(schemas.get("processed.contract_pages"))
    assert pages["document_id"].nunique() == len(truth) == len(reg)
    assert set(pages["method"]) <= {"text", "pdf_text", "ocr", "none"}
    for t in truth:
        r = reg.loc[t["file_name"]]
        assert r["vendor_id"] == t["vendor_id"], t["file_name"]
        assert r["effective_date"] == date.fromisoformat(t["effective_date"])
        assert r["expiration_date"] == date.fromisoformat(t["expiration_date"])
        assert bool(r["auto_renew"]) == (t["auto_renew"] == "True")
        want_opt = date.fromisoformat(t["opt_out_deadline"]) if t["opt_out_deadline"] else None
        assert (r["opt_out_deadline"] if r["opt_out_deadline"] == r["opt_out_deadline"] else None) == want_opt
        assert abs(Decimal(str(r["annual_value"])) - Decimal(t["annual_value"])) <= 1
        assert r["approval_state"] in ("draft", "review")


def test_reminders_fire_once_on_their_day(lake):
    settings, lk = lake
    cfg = settings.model("vcm")
    out = lk.read_pandas(schemas.get("events.outbox"))
    out = out[out["event_type"] == "contract.renewal.due"]
    assert out["event_id"].is_unique
    reg = lk.read_pandas(schemas.get("processed.contract_register")).set_index("contract_id")
    for env in out["envelope"]:
        e = json.loads(env)
        d = e["data"]
        day, opt = date.fromisoformat(e["time"]), date.fromisoformat(d["opt_out_date"])
        assert d["reminder_days"] in cfg.reminder_days
        assert opt - day == timedelta(days=d["days_to_opt_out"])
        first_seen = reg.loc[d["contract_id"], "first_seen"]
        assert day == max(opt - timedelta(days=d["reminder_days"]), first_seen)
        assert e["evidence"]["metric"] == "days_to_opt_out" and e["evidence"]["source_rows"]
    keys = [(json.loads(x)["data"]["contract_id"], json.loads(x)["data"]["opt_out_date"],
             json.loads(x)["data"]["reminder_days"]) for x in out["envelope"]]
    assert len(keys) == len(set(keys))


def test_sql_and_demo_questions(lake):
    settings, _ = lake
    from lakehouse.environment import sql_catalog

    cat = sql_catalog(settings)
    n = cat.query("SELECT count(*) AS n FROM processed.contract_register")["n"].iloc[0]
    assert n > 0
    for q in AGENT.questions:
        cat.query(q.sql)  # runs on the catalog without error
    for p in AGENT.panels:
        cat.query(p.sql)


def test_read_only_commands(lake, capsys):
    settings, _ = lake
    import argparse

    parser = argparse.ArgumentParser()
    vcm_cli.register(parser.add_subparsers())
    for argv in (["vcm", "contracts"], ["vcm", "renewals", "--within", "400"], ["vcm", "scorecard"],
                 ["vcm", "search", "auto-renew notice 60 days"], ["vcm", "review"]):
        args = parser.parse_args(argv)
        assert args.func(args, settings) == 0, argv
    shown = capsys.readouterr().out
    assert "Contract register" in shown and "Vendor scorecard" in shown
    pdf = next(Path(settings.landing_root).rglob("*.pdf"))
    doc = vcm_cli.extract_files(settings, [str(pdf)], ocr=False)[0]
    assert doc["fields"]["vendor_name"]["value"] or doc["pages"][0]["review_reason"] == "ocr_unavailable"
