"""``msp schemas`` (the declared datasets) and ``msp quality`` (the gate's latest results)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def register(subparsers) -> None:
    p = subparsers.add_parser("schemas", help="list the declared datasets, or show one with its columns and DDL")
    p.add_argument("--zone", help="only this zone (raw, processed, quarantine, analytics, events, ...)")
    p.add_argument("--owner", help="only this owner (platform or an agent: msp agents lists them)")
    p.add_argument("--no-rows", action="store_true", help="do not count published rows (faster on S3)")
    sub = p.add_subparsers(dest="schemas_command", metavar="show NAME")
    s = sub.add_parser("show", help="one dataset: columns, keys, Glue/Athena DDL")
    s.add_argument("name", help="dataset name, e.g. tickets or processed.tickets")
    s.add_argument("--suite", action="store_true", help="also print its gate rules (baseline + expectations/)")
    p.set_defaults(func=cmd_schemas)

    q = subparsers.add_parser("quality", help="latest quality gate results per dataset")
    q.add_argument("--json", action="store_true", help="print the result JSON instead of a table")
    sub = q.add_subparsers(dest="quality_command", metavar="{show,rules}")
    s = sub.add_parser("show", help="one dataset's latest result: every rule, failing rows, drift, errors")
    s.add_argument("name")
    r = sub.add_parser("rules", help="the rules the gate applies to a raw dataset (Great Expectations JSON)")
    r.add_argument("name")
    q.set_defaults(func=cmd_quality)


# ---- msp schemas ----------------------------------------------------------------------------------------
def _find(name: str):
    import schemas

    catalog = schemas.catalog()
    if name in catalog:
        return catalog[name], []
    matches = [d for q, d in catalog.items() if q.split(".", 1)[1] == name]
    if not matches:
        close = [q for q in catalog if name in q]
        raise SystemExit(f"no dataset {name!r} is declared" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    order = ["raw", "processed", "quarantine"]
    matches.sort(key=lambda d: order.index(d.zone_root) if d.zone_root in order else 9)
    return matches[0], matches[1:]


def cmd_schemas(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    import schemas
    from lakehouse.cli import console
    from lakehouse.lake import Lake

    lake = Lake.from_settings(settings)
    if args.schemas_command == "show":
        ds, others = _find(args.name)
        console.print(f"[bold]{ds.qualified_name}[/]  zone {ds.zone}, owner {ds.owner}"
                      + (f", source {ds.source}/{ds.format}" if ds.source else ""))
        console.print(ds.description)
        console.print(f"primary key: {', '.join(ds.primary_key) or '-'}; partitioned by: "
                      f"{', '.join(ds.partition_by) or '-'}" + (f"; null tokens: {list(ds.null_tokens)}"
                                                                 if ds.null_tokens else ""))
        table = Table(title="Columns (as stored)", title_justify="left")
        for col in ("column", "type", "nullable", "contract", "description"):
            table.add_column(col)
        declared = {c.name: c for c in ds.columns}
        for c in ds.stored_columns():
            d = declared.get(c.name, c)
            contract = []
            if d.allowed is not None:
                contract.append("one of " + ", ".join(map(str, d.allowed)))
            if d.min is not None:
                contract.append(f">= {d.min}")
            if d.max is not None:
                contract.append(f"<= {d.max}")
            if d.formats:
                contract.append("formats " + " | ".join(d.formats))
            if ds.zone_root == "raw" and d.type != c.type:
                contract.insert(0, f"reads as {d.type}")
            if ds.zone_root == "raw" and not d.nullable and c.name in {x.name for x in ds.data_columns}:
                contract.insert(0, "required")
            table.add_row(c.name, c.type, "yes" if c.nullable else "no", "; ".join(contract), c.description)
        console.print(table)
        database = ds.glue_database(settings.platform.glue_database_prefix)
        console.print("[bold]Glue / Athena DDL[/]")
        console.print(ds.glue_ddl(database, ds.location(lake.root)), markup=False, highlight=False)
        if others:
            console.print(f"[dim]also declared: {', '.join(o.qualified_name for o in others)}[/]")
        if args.suite:
            _print_rules(ds if ds.zone_root == "raw" else schemas.get(f"raw.{ds.name}"))
        return 0

    table = Table(title="Declared datasets", title_justify="left")
    for col in ("dataset", "zone", "owner", "rows", "description"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    shown = 0
    for ds in schemas.catalog().values():
        if args.zone and ds.zone != args.zone and ds.zone_root != args.zone:
            continue
        if args.owner and ds.owner != args.owner:
            continue
        rows = "" if args.no_rows else f"{sum(f.records for f in lake.data_files(ds)):,}"
        first = ds.description.split(". ")[0].rstrip(".")
        table.add_row(ds.qualified_name, ds.zone, ds.owner, rows, first[:110] + ("…" if len(first) > 110 else ""))
        shown += 1
    console.print(table)
    console.print(f"[dim]{shown} dataset(s); `msp schemas show NAME` for columns and DDL[/]")
    return 0


# ---- msp quality ------------------------------------------------------------------------------------------
def _print_rules(raw) -> None:
    from lakehouse.cli import console
    from lakehouse.quality.suite import load_suite

    suite = load_suite(raw)
    console.print_json(json.dumps(suite.gx_config(), default=str))


def cmd_quality(args: argparse.Namespace, settings: Settings) -> int:
    from rich.table import Table

    from lakehouse.cli import console
    from lakehouse.lake import Lake
    from lakehouse.quality import report

    lake = Lake.from_settings(settings)
    if args.quality_command == "rules":
        ds, _ = _find(args.name)
        import schemas

        _print_rules(ds if ds.zone_root == "raw" else schemas.get(f"raw.{ds.name}"))
        return 0
    results = report.latest(lake)
    if args.quality_command == "show":
        name = args.name.split(".")[-1]
        found = [r for r in results if r["dataset"] == name]
        if not found:
            raise SystemExit(f"no quality result for {name!r} yet: run `msp run` (the quality stage) first")
        r = found[0]
        if args.json:
            print(json.dumps(r, indent=1, default=str))
            return 0
        _print_result(console, r)
        return 0
    if args.json:
        print(json.dumps(results, indent=1, default=str))
        return 0
    if not results:
        console.print("no quality results yet: run `msp run` (the quality stage) first")
        return 0
    docs = report.data_docs_index(lake)
    table = Table(title="Quality gate: latest result per dataset", title_justify="left")
    for col in ("dataset", "status", "days", "raw", "processed", "quarantined", "duplicates", "failing rules"):
        table.add_column(col, justify="right" if col in ("raw", "processed", "quarantined", "duplicates") else "left")
    style = {"failed": "red", "warned": "yellow", "passed": "green", "no_data": "dim"}
    for r in results:
        c = r.get("counts", {})
        dates = r.get("dates") or [""]
        failing = [f"{x['id']} ({x['failed_rows']:,})" for x in r.get("rules", []) if x.get("failed_rows")]
        detail = ", ".join(failing[:4]) + (" …" if len(failing) > 4 else "")
        if r.get("errors"):
            detail = r["errors"][0][:160]
        held = "" if r.get("published") or not c else " (held)"
        table.add_row(r["dataset"], f"[{style.get(r['status'], '')}]{r['status']}[/]",
                      f"{dates[0]} → {dates[-1]}", f"{c.get('raw', 0):,}", f"{c.get('processed', 0):,}{held}",
                      f"{c.get('quarantined', 0):,}", f"{c.get('duplicates', 0):,}", detail)
    console.print(table)
    console.print(f"Great Expectations Data Docs: {docs}" + ("" if not lake.local or Path(docs).exists()
                                                             else " (not built yet)"), highlight=False)
    console.print(f"[dim]GX project: {lake.path(report.ROOT)}/gx · `msp quality show NAME` for one dataset[/]")
    return 1 if any(r["status"] == "failed" or r.get("stop") for r in results) else 0


def _print_result(console, r: dict) -> None:
    from rich.table import Table

    c = r.get("counts", {})
    console.print(f"[bold]{r['dataset']}[/] {r['status']} · run {r['run_id']} · days {r['dates'][0]} → "
                  f"{r['dates'][-1]}")
    if c:
        console.print(f"{c.get('raw', 0):,} raw = {c.get('processed', 0):,} processed + {c.get('quarantined', 0):,} "
                      f"quarantined + {c.get('duplicates', 0):,} duplicates"
                      + (" (reconciled)" if c.get("reconciled") else ""))
    for e in r.get("errors", []):
        console.print(f"[red]error:[/] {e}", markup=True, highlight=False)
    for d in r.get("drift", []):
        console.print(f"[yellow]drift:[/] {d.get('file')}: {d.get('message')}", highlight=False)
    for w in r.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}", highlight=False)
    table = Table(title="Rules", title_justify="left")
    for col in ("rule", "severity", "from", "what it checks", "failing rows", "first failing row"):
        table.add_column(col, justify="right" if col == "failing rows" else "left")
    for x in r.get("rules", []):
        sample = (x.get("samples") or [{}])[0]
        where = (f"{sample.get('_source_file')} row {sample.get('_row_number')}: "
                 + ", ".join(f"{k}={v}" for k, v in sample.items()
                             if k not in ("dt", "_source_file", "_row_number"))) if sample else ""
        table.add_row(x["id"], x["severity"], x.get("source", ""), x.get("description", ""),
                      f"{x.get('failed_rows', 0):,}", where[:120])
    console.print(table)
    for k in r.get("checks", []):
        console.print(f"check {k['check']}: {k['status']} ({k.get('message')})", highlight=False)
    audit = r.get("audit") or {}
    if audit.get("checkpoint"):
        console.print(f"audit: Great Expectations Checkpoint {audit['checkpoint']} on the {audit.get('rows', 0):,} "
                      f"published rows: {'passed' if audit.get('success') else 'failed'}"
                      + (f" ({len(audit.get('warned') or {})} warning rule(s))" if audit.get("warned") else ""),
                      highlight=False)
