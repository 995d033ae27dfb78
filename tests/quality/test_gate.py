"""The gate on hand-written landing files: each kind of dirt is quarantined with the right reason,
good rows are published, and raw = processed + quarantined + duplicates."""

from __future__ import annotations

import schemas
from tests.quality.conftest import CLIENTS, HEADER, TICKETS, TICKETS_SUITE

DAY = "2024-03-01"
CLIENTS_CSV = "client_id,name,tier\nC1,Acme,gold\nC2,Globex,silver\n"


def reasons(rows):
    return {r["ticket_id"]: r["_rules_broken"] for r in rows}


def ticket(i, client="C1", hours="1.00", created="2024-03-01 09:00:00", priority="low"):
    return f"T{i},{client},{priority},{hours},{created},,"


def tickets_csv(rows):
    return HEADER + "\n" + "\n".join(rows) + "\n"


def test_each_dirty_kind_is_quarantined_with_its_reason_and_nothing_is_lost(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, HEADER + "\n" + "\n".join([
        "T1,C1,low,1.50,2024-03-01 09:00:00,2024-03-01 10:00:00,2024-03-05",  # good
        "T1,C1,low,1.50,2024-03-01 09:00:00,2024-03-01 10:00:00,2024-03-05",  # exact duplicate
        "T2,C2,high,,2024-03-01T11:00:00Z,,",                                 # good, optional blanks
        "T3,,low,1,2024-03-01 09:00:00,,",                                     # blank required field
        "T4,C1,low,1,03/01/2024 09:00,,",                                      # wrong date format
        "T5,C1,low,-2.00,2024-03-01 09:00:00,,",                               # negative amount
        "T6,C9,low,1,2024-03-01 09:00:00,,",                                   # unknown foreign key
        "T7,C1,urgent,1,2024-03-01 09:00:00,,",                                # value not allowed
        "T8,C1,low,1,2024-03-01 09:00:00,2024-02-28 09:00:00,",                # resolved before created
        "T9,C1,low,abc,2024-03-01 09:00:00,,2024-02-30",                       # wrong types, impossible date
        "T10,C1,low,13,2024-03-01 09:00:00,,",                                 # warning only: published
        "T11,C1,low,1.505,2024-03-01 09:00:00,,",                              # more digits than the scale
    ]) + "\n")
    ctx, results = lakehouse.run(DAY)
    r = results["q_tickets"]
    assert r.status == "warned", r.errors
    assert reasons(lakehouse.quarantined(TICKETS)) == {
        "T3": "not_null:client_id",
        "T4": "type:created_at",
        "T5": "range:hours",
        "T6": "fk:client_id",
        "T7": "allowed:priority",
        "T8": "resolved_after_created",
        "T9": "type:hours; type:due_date",
        "T11": "type:hours",
    }
    published = {row["ticket_id"]: row for row in lakehouse.processed(TICKETS)}
    assert sorted(published) == ["T1", "T10", "T2"]
    assert str(published["T1"]["hours"]) == "1.50" and str(published["T1"]["due_date"]) == "2024-03-05"
    assert published["T2"]["created_at"].isoformat() == "2024-03-01T11:00:00+00:00"
    assert r.counts == {"raw": 12, "processed": 3, "quarantined": 8, "duplicates": 1, "reconciled": True}
    count = ctx.counts["processed.q_tickets"]
    assert (count.rows_in, count.rows_out, count.quarantined, count.duplicates) == (12, 3, 8, 1)
    assert ctx.counts["quarantine.q_tickets"].rows_out == 8
    long_ticket = next(x for x in r.rules if x["id"] == "long_ticket")
    assert long_ticket["failed_rows"] == 1 and long_ticket["samples"][0]["ticket_id"] == "T10"
    # the audit: the dataset's Checkpoint validated the 3 published rows; the warning rule failed there too
    assert r.audit["checkpoint"] == "processed.q_tickets" and r.audit["rows"] == 3 and r.audit["success"] is False
    assert list(r.audit["warned"]) == ["long_ticket"] and r.audit["failed"] == {}
    assert long_ticket["audit"]["unexpected_count"] == 1


def test_quarantined_rows_keep_their_source_text_and_lineage(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1), "T2,C1,low, 1.5x ,2024-03-01 09:00:00,,"]))
    lakehouse.run(DAY)
    (row,) = lakehouse.quarantined(TICKETS)
    assert {k: row[k] for k in ("ticket_id", "hours", "created_at", "_rules_broken", "_severity", "_rules_warned",
                                "_source_file", "_row_number", "dt")} == {
        "ticket_id": "T2", "hours": " 1.5x ", "created_at": "2024-03-01 09:00:00", "_rules_broken": "type:hours",
        "_severity": "critical", "_rules_warned": None, "_source_file": "psa/q_tickets/q_tickets_2024-03-01.csv",
        "_row_number": 2, "dt": DAY}


def test_a_rerun_of_the_day_gives_the_same_tables(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1), ticket(2, client="C9"), ticket(1)]))
    lakehouse.run(DAY)
    lake = lakehouse.lake
    tables = (TICKETS.processed_twin(), TICKETS.quarantine_twin())
    before = [lake.checksum(d) for d in tables]
    snapshots = [lake.snapshot_id(d) for d in tables]
    lakehouse.configure(MSP_SKIP_UNCHANGED="false")  # gate it again
    _, results = lakehouse.run(DAY)
    assert [lake.snapshot_id(d) for d in tables] != snapshots  # published again...
    assert [lake.checksum(d) for d in tables] == before        # ... the same rows
    assert results["q_tickets"].counts == {"raw": 3, "processed": 1, "quarantined": 1, "duplicates": 1,
                                           "reconciled": True}


def test_a_rerun_with_nothing_new_publishes_nothing_and_any_new_input_is_gated(lakehouse):
    lake = lakehouse.lake
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1), ticket(2, client="C2")]))
    first, _ = lakehouse.run(DAY)
    snapshot = lake.snapshot_id(TICKETS.processed_twin())

    again, results = lakehouse.run(DAY)
    assert {name: r.status for name, r in results.items()} == {"q_clients": "unchanged", "q_tickets": "unchanged"}
    assert lake.snapshot_id(TICKETS.processed_twin()) == snapshot
    assert any(f"unchanged since run {first.run_id}" in n for n in again.counts["processed.q_tickets"].notes)

    # a corrected clients export drops C2: clients is gated again, and so is tickets, which looks clients up
    lakehouse.land(CLIENTS, DAY, "client_id,name,tier\nC1,Acme,gold\n")
    _, results = lakehouse.run(DAY)
    assert results["q_clients"].status == "passed" and results["q_tickets"].status == "warned"
    assert reasons(lakehouse.quarantined(TICKETS)) == {"T2": "fk:client_id"}

    # a changed suite is gated again too, and only the dataset whose suite changed
    lakehouse.write_suite({**TICKETS_SUITE, "expectations": TICKETS_SUITE["expectations"][:2]})
    _, results = lakehouse.run(DAY)
    assert results["q_clients"].status == "unchanged" and results["q_tickets"].status == "warned"
    # ... and so is a changed setting
    lakehouse.configure(MSP_QUALITY__SAMPLE_FAILING_ROWS="2")
    _, results = lakehouse.run(DAY)
    assert {name: r.status for name, r in results.items()} == {"q_clients": "passed", "q_tickets": "warned"}


def test_all_the_run_days_are_gated_together_in_one_commit_and_counted_per_day(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1), ticket(2)]))
    lakehouse.land(TICKETS, "2024-03-02", tickets_csv([ticket(3), ticket(1), ticket(4, hours="-1")]))
    ctx, results = lakehouse.run(DAY, "2024-03-02")
    r = results["q_tickets"]
    assert r.per_day == {DAY: {"raw": 2, "duplicates": 0, "quarantined": 0, "processed": 2},
                         "2024-03-02": {"raw": 3, "duplicates": 0, "quarantined": 1, "processed": 2}}
    # the same key on two export days is two versions of the record, not a duplicate
    assert sorted((row["ticket_id"], row["dt"]) for row in lakehouse.processed(TICKETS)) == [
        ("T1", DAY), ("T1", "2024-03-02"), ("T2", DAY), ("T3", "2024-03-02")]
    history = [h for h in lakehouse.lake.history(TICKETS.processed_twin()) if h["run_id"] == ctx.run_id]
    assert [(h["replaced"], h["added_records"]) for h in history] == [("dt=2024-03-01..2024-03-02 (2)", 4)]


def test_conflicting_rows_for_one_key_are_all_quarantined(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1, hours="1.00"), ticket(1, hours="2.00"), ticket(2)]))
    lakehouse.run(DAY)
    refused = lakehouse.quarantined(TICKETS)
    assert sorted((r["ticket_id"], r["hours"], r["_rules_broken"]) for r in refused) == [
        ("T1", "1.00", "unique:ticket_id"), ("T1", "2.00", "unique:ticket_id")]
    assert [r["ticket_id"] for r in lakehouse.processed(TICKETS)] == ["T2"]
    assert {r["_source_file"] for r in refused} == {"psa/q_tickets/q_tickets_2024-03-01.csv"}
    assert sorted(r["_row_number"] for r in refused) == [1, 2]


def test_bad_files_are_refused_whole_with_a_clear_error_and_the_good_files_still_load(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1)]))
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(2)]).encode("utf-16"), name=f"q_tickets_{DAY}_latin.csv")
    lakehouse.land(TICKETS, DAY, "", name=f"q_tickets_{DAY}_empty.csv")
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(3), "T4,C1,low"]), name=f"q_tickets_{DAY}_ragged.csv")
    _, results = lakehouse.run(DAY)
    r = results["q_tickets"]
    assert r.status == "warned" and not r.errors
    found = {f["source_file"].rsplit("/", 1)[1]: f["reason"] for f in r.rejected_files}
    assert "not valid UTF-8" in found[f"q_tickets_{DAY}_latin.csv"]
    assert "empty file" in found[f"q_tickets_{DAY}_empty.csv"]
    assert f"q_tickets_{DAY}_ragged.csv" not in found  # its good row loads, its ragged line is recorded alone
    [line] = lakehouse.lake.read_arrow(schemas.get("quarantine.rejected_lines")).to_pylist()
    assert (line["source_file"], line["line"], line["text"]) == (f"psa/q_tickets/q_tickets_{DAY}_ragged.csv", 3,
                                                                 "T4,C1,low")
    assert "expected 7 fields, found 3" in line["reason"]
    assert sorted(row["ticket_id"] for row in lakehouse.processed(TICKETS)) == ["T1", "T3"]
    assert r.counts == {"raw": 2, "processed": 2, "quarantined": 0, "duplicates": 0, "reconciled": True}


def test_schema_drift_added_columns_pass_a_renamed_key_stops_the_stage_but_not_the_other_files(lakehouse):
    lakehouse.land(CLIENTS, DAY, "client_id,name,tier,region\nC1,Acme,gold,EU\n")
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1)]))
    lakehouse.land(TICKETS, DAY, HEADER.replace("priority", "prio") + "\nT2,C1,low,1,2024-03-01 09:00:00,,\n",
                   name=f"q_tickets_{DAY}_b.csv")
    lakehouse.land(TICKETS, DAY, HEADER.replace("ticket_id", "id") + "\nT3,C1,low,1,2024-03-01 09:00:00,,\n",
                   name=f"q_tickets_{DAY}_c.csv")
    lakehouse.land(TICKETS, "2024-03-02", tickets_csv([ticket(4)]))
    ctx, results = lakehouse.run(DAY, "2024-03-02")
    clients, tickets = results["q_clients"], results["q_tickets"]
    assert clients.status == "passed"  # an added column is accepted; ingestion warned about it
    assert ("q_clients: psa/q_clients/q_clients_2024-03-01.csv: schema drift: column(s) region not declared; "
            "accepted and ignored") in ctx.warnings
    assert [row["client_id"] for row in lakehouse.processed(CLIENTS)] == ["C1"]
    # the other file of the day and the other day are published; the drifted files are named
    assert tickets.status == "warned" and tickets.published
    assert sorted(r["ticket_id"] for r in lakehouse.processed(TICKETS)) == ["T1", "T4"]
    assert tickets.stop == tickets.errors == [
        "schema drift in psa/q_tickets/q_tickets_2024-03-01_c.csv: key column ticket_id: schema drift: declared "
        "column(s) ticket_id missing from the header (removed or renamed upstream); key column ticket_id (file "
        "rejected at ingestion; the other files were gated)"]
    assert any("q_tickets_2024-03-01_b.csv: column priority" in w for w in tickets.warnings)
    assert [(d["file"][-6:], d["severity"]) for d in tickets.drift] == [("_b.csv", "warning"), ("_c.csv", "critical")]


def test_a_retyped_column_stops_the_dataset_naming_the_file_and_the_column(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1), ticket(2, hours="n/a")]))  # one bad value: quarantined
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(i, hours=f"{i}h30") for i in range(10, 14)]),
                   name=f"q_tickets_{DAY}_b.csv")
    _, results = lakehouse.run(DAY)
    r = results["q_tickets"]
    assert r.status == "failed"
    assert r.errors == ["schema drift in psa/q_tickets/q_tickets_2024-03-01_b.csv: column hours: 4 of 4 values do "
                        "not read as decimal(6,2) (e.g. '10h30'); re-typed upstream?"]
    assert lakehouse.processed(TICKETS) == []


def test_a_collapsed_row_count_or_a_null_share_jump_fails_the_dataset_and_publishes_nothing(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(i) for i in range(40)]))
    lakehouse.run(DAY)
    lakehouse.land(TICKETS, "2024-03-02", tickets_csv([ticket(i) for i in range(100, 110)]))
    lakehouse.land(TICKETS, "2024-03-03", tickets_csv([ticket(i) for i in range(200, 240)]))
    lakehouse.land(TICKETS, "2024-03-04", tickets_csv(
        [ticket(i) for i in range(300, 320)] + [f"T{i},C1,low,,2024-03-01 09:00:00,," for i in range(320, 340)]))
    ctx, results = lakehouse.run("2024-03-02", "2024-03-03", "2024-03-04")
    r = results["q_tickets"]
    assert r.status == "failed"
    assert r.errors == [
        "row count fell from 40 on 2024-03-01 to 10 on 2024-03-02 (-75%; the limit is -50%)",
        "null share of hours jumped from 0% on 2024-03-03 to 50% on 2024-03-04 (limit +20%)"]
    assert sorted({row["dt"] for row in lakehouse.processed(TICKETS)}) == [DAY]
    assert results["q_clients"].status == "no_data"
    assert "FAILED the quality gate" in ctx.counts["processed.q_tickets"].notes[0]


def test_the_null_share_baseline_of_a_daily_run_is_the_day_before_in_the_raw_table(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(i) for i in range(40)]))
    lakehouse.run(DAY)
    lakehouse.land(TICKETS, "2024-03-02", tickets_csv(
        [ticket(i) for i in range(100, 120)] + [f"T{i},C1,low,,2024-03-01 09:00:00,," for i in range(120, 140)]))
    _, results = lakehouse.run("2024-03-02")
    assert results["q_tickets"].errors == [
        "null share of hours jumped from 0% on 2024-03-01 to 50% on 2024-03-02 (limit +20%)"]


def test_a_json_key_renamed_upstream_quarantines_its_file_and_a_renamed_key_column_stops_the_stage(lakehouse):
    from schemas import Column, Dataset

    events = Dataset(name="q_events", zone="raw", owner="platform", description="t", source="crm", format="jsonl",
                     columns=(Column("event_id", "string", nullable=False),
                              Column("occurred_at", "timestamp", nullable=False), Column("score", "double")),
                     primary_key=("event_id",))
    lakehouse.add(events)
    lines = [f'{{"event_id": "E{i}", "occurredAt": "2024-03-01T10:00:00Z", "score": {i}}}' for i in range(4)]
    lakehouse.land(events, DAY, "\n".join(lines) + "\n", name=f"q_events_{DAY}.jsonl")
    lakehouse.land(events, DAY, '{"event_id": "E9", "occurred_at": "2024-03-01T10:00:00Z"}\n',
                   name=f"q_events_{DAY}_b.jsonl")
    _, results = lakehouse.run(DAY, datasets=(events,))
    r = results["q_events"]
    assert r.status == "warned" and r.published and not r.stop
    assert [row["event_id"] for row in lakehouse.processed(events)] == ["E9"]
    assert {row["_rules_broken"] for row in lakehouse.quarantined(events)} == {"not_null:occurred_at"}
    assert ("schema drift in crm/q_events/q_events_2024-03-01.jsonl: column occurred_at: required but empty in all 4 "
            "rows (missing or renamed upstream?); its rows are quarantined") in r.warnings
    assert [(d["kind"], d["column"], d["severity"]) for d in r.drift] == [("missing", "occurred_at", "warning")]
    lines = [f'{{"eventId": "E{i}", "occurred_at": "2024-03-02T10:0{i}:00Z"}}' for i in range(4)]
    lakehouse.land(events, "2024-03-02", "\n".join(lines) + "\n", name="q_events_2024-03-02.jsonl")
    _, results = lakehouse.run("2024-03-02", datasets=(events,))
    r = results["q_events"]
    assert r.published and r.stop == [
        "schema drift in crm/q_events/q_events_2024-03-02.jsonl: key column event_id: required but empty in all 4 "
        "rows (missing or renamed upstream?); its rows are quarantined"]


def test_a_corrected_export_with_only_a_header_empties_the_day(lakehouse):
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1), ticket(2, client="C9")]))
    lakehouse.run(DAY)
    assert len(lakehouse.processed(TICKETS)) == 1 and len(lakehouse.quarantined(TICKETS)) == 1
    lakehouse.land(TICKETS, DAY, HEADER + "\n")
    _, results = lakehouse.run(DAY)
    r = results["q_tickets"]
    assert r.status == "passed" and r.published
    assert r.counts == {"raw": 0, "processed": 0, "quarantined": 0, "duplicates": 0, "reconciled": True}
    assert lakehouse.processed(TICKETS) == [] and lakehouse.quarantined(TICKETS) == []


def test_a_foreign_key_counts_from_the_day_its_parent_was_exported(lakehouse):
    """A backfill gives the same verdicts as daily runs: a parent exported later does not exist yet."""
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)
    lakehouse.land(CLIENTS, "2024-03-02", "client_id,name,tier\nC3,Initech,gold\n")
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1, client="C3"), ticket(2, client="C1")]))
    lakehouse.land(TICKETS, "2024-03-02", tickets_csv([ticket(3, client="C3")]))
    lakehouse.run(DAY, "2024-03-02")
    assert [(r["ticket_id"], r["_rules_broken"]) for r in lakehouse.quarantined(TICKETS)] == [("T1", "fk:client_id")]
    assert sorted(r["ticket_id"] for r in lakehouse.processed(TICKETS)) == ["T2", "T3"]


def test_a_dataset_whose_parent_failed_fails_too_instead_of_quarantining_orphans(lakehouse):
    lakehouse.land(CLIENTS, "2024-02-29", "client_id,name,tier\n" + "".join(f"C{i},N{i},gold\n" for i in range(30)))
    lakehouse.run("2024-02-29", datasets=(CLIENTS,))
    lakehouse.land(CLIENTS, DAY, CLIENTS_CSV)  # 2 rows after 30: the row-count check fails the parent
    lakehouse.land(TICKETS, DAY, tickets_csv([ticket(1)]))
    _, results = lakehouse.run(DAY)
    assert results["q_clients"].status == "failed"
    assert results["q_tickets"].errors == [
        "looks rows up in processed.q_clients, which failed the gate in this run; gating now would quarantine good "
        "rows as orphans"]
    assert lakehouse.quarantined(TICKETS) == []


def test_the_gate_names_the_tables_it_withheld_so_the_runner_runs_the_stages_that_read_none(settings, monkeypatch):
    """`quality` (the stage) fails when a dataset fails, and its error says which processed and quarantine
    tables it did not publish (lakehouse.runner skips only the stages that read one of them)."""
    from datetime import date

    import pytest

    from lakehouse.context import RunContext
    from lakehouse.quality import gate as gate_module
    from lakehouse.quality.report import DatasetResult

    def fake_gate(ctx, suites):
        results = [DatasetResult(s.name, ctx.run_id, ctx.days) for s in suites]
        for r in results:
            if r.dataset == "time_entries":
                r.fail("null share of ticket_id jumped")
        return results

    monkeypatch.setattr(gate_module, "gate", fake_gate)
    ctx = RunContext.create(settings, [date(2024, 1, 2)])
    with pytest.raises(gate_module.QualityGateError, match="time_entries: null share") as raised:
        gate_module.run(ctx)
    assert raised.value.withheld == ["processed.time_entries", "quarantine.time_entries"]
