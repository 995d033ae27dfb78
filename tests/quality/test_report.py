"""What people read: the result JSON in the lake, `msp quality` (which says where the Data Docs are) and
`msp schemas`."""

from __future__ import annotations

import json

import pytest

from lakehouse.cli import main
from tests.quality.conftest import CLIENTS, HEADER, TICKETS

DAY = "2024-03-01"


@pytest.fixture
def cli(lakehouse, monkeypatch, capsys):
    monkeypatch.setenv("MSP_HOME", str(lakehouse.home))
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(lakehouse.home.parent)

    def run(*argv):
        code = main(list(argv))
        return code, capsys.readouterr().out

    return run


def test_results_are_kept_as_json_and_printed_by_msp_quality_with_the_data_docs_path(lakehouse, cli):
    lakehouse.configure(MSP_QUALITY__DATA_DOCS="on")
    lakehouse.land(CLIENTS, DAY, "client_id,name,tier\nC1,Acme,gold\n")
    lakehouse.land(TICKETS, DAY, HEADER + "\nT1,C1,low,1,2024-03-01 09:00:00,,\nT2,C7,low,1,2024-03-01 09:00:00,,\n"
                   "T3,C1,low,-5,2024-03-01 09:00:00,,\n")
    ctx, _ = lakehouse.run(DAY)
    base = lakehouse.home / "lake" / "_meta" / "quality"
    saved = json.loads((base / "runs" / ctx.run_id / "q_tickets.json").read_text())
    assert saved == json.loads((base / "latest" / "q_tickets.json").read_text())
    assert saved["counts"] == {"raw": 3, "processed": 1, "quarantined": 2, "duplicates": 0, "reconciled": True}
    assert saved["published"] is True and saved["status"] == "warned" and saved["engine"] == "duckdb"
    rules = {r["id"]: r for r in saved["rules"]}
    assert rules["fk:client_id"]["failed_rows"] == 1
    assert rules["fk:client_id"]["samples"] == [{"dt": DAY, "_source_file": "psa/q_tickets/q_tickets_2024-03-01.csv",
                                                 "_row_number": 2, "ticket_id": "T2", "_client_known": None,
                                                 "client_id": "C7"}]
    assert rules["range:hours"]["samples"][0]["hours"] == "-5"
    assert saved["audit"] == {"checkpoint": "processed.q_tickets", "rows": 1, "success": True, "failed": {},
                              "warned": {}, "result_key": saved["audit"]["result_key"],
                              "seconds": saved["audit"]["seconds"]}

    code, out = cli("quality")
    assert code == 0
    assert "q_tickets" in out and "warned" in out and "fk:client_id (1)" in out and "range:hours (1)" in out
    assert f"Great Expectations Data Docs: {base / 'data_docs' / 'index.html'}" in out
    assert (base / "data_docs" / "index.html").is_file()
    code, out = cli("quality", "show", "q_tickets")
    assert "3 raw = 1 processed + 2 quarantined + 0 duplicates (reconciled)" in out
    assert "q_tickets_2024-03-01.csv row 3" in out and "hours=-5" in out
    assert "audit: Great Expectations Checkpoint processed.q_tickets on the 1 published rows: passed" in out
    code, out = cli("quality", "--json")
    assert {r["dataset"] for r in json.loads(out)} == {"q_clients", "q_tickets"}


def test_msp_quality_exits_1_when_a_dataset_failed(lakehouse, cli):
    lakehouse.land(CLIENTS, DAY, "client_id,name,tier\nC1,Acme,gold\n")
    lakehouse.land(TICKETS, DAY, "\n".join([HEADER, *[f"T{i},C1,low,{i}h30,2024-03-01 09:00:00,," for i in range(4)]])
                   + "\n")  # hours re-typed upstream: the dataset fails
    lakehouse.run(DAY)
    code, out = cli("quality")
    assert code == 1 and "failed" in out and "schema drift" in out


def test_msp_quality_exits_1_when_a_file_with_a_renamed_key_was_left_out(lakehouse, cli):
    lakehouse.land(CLIENTS, DAY, "client_id,name,tier\nC1,Acme,gold\n")
    lakehouse.land(CLIENTS, DAY, "id,name,tier\nC2,Globex,gold\n", name=f"q_clients_{DAY}_b.csv")
    lakehouse.run(DAY, datasets=(CLIENTS,))
    code, out = cli("quality")
    assert code == 1 and "warned" in out


def test_msp_schemas_lists_every_dataset_and_shows_one_with_its_ddl(cli):
    code, out = cli("schemas", "--no-rows")
    assert code == 0
    for name in ("raw.tickets", "processed.tickets", "quarantine.tickets", "quarantine.rejected_files"):
        assert name in out
    code, out = cli("schemas", "show", "focus_costs")
    assert code == 0
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `msp_raw`.`focus_costs`" in out
    assert "reads as decimal(38,11)" in out and "null tokens: ['NULL']" in out
    assert "also declared: processed.focus_costs, quarantine.focus_costs" in out
    code, out = cli("schemas", "show", "quarantine.tickets")
    assert "`_rules_broken` string" in out and "PARTITIONED BY (`dt` string)" in out
    code, out = cli("quality", "rules", "tickets")
    suite = json.loads(out)
    assert suite["name"] == "tickets"
    assert {"not_null:ticket_id", "unique:ticket_id", "fk:client_id", "resolved_after_created"} <= {
        e["meta"]["rule"] for e in suite["expectations"]}
