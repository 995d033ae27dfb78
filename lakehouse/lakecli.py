"""``msp lake`` (tables, snapshots, maintenance) and ``msp catalog`` (the analysts' SQL catalog)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def register(subparsers) -> None:
    lake = subparsers.add_parser("lake", help="the lake's Iceberg tables: list them, their snapshots, maintain them")
    sub = lake.add_subparsers(dest="lake_command", required=True, metavar="LAKE_COMMAND")
    p = sub.add_parser("tables", help="every table with its current snapshot, rows and data files")
    p.add_argument("--zone", help="only this zone root (raw, processed, analytics, quarantine, events)")
    p.set_defaults(func=cmd_tables)
    p = sub.add_parser("history", help="a table's snapshots: when, which run and stage, rows added and removed")
    p.add_argument("table", help="qualified name, e.g. processed.tickets")
    p.add_argument("--limit", type=int, default=20, help="newest N snapshots (default 20)")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("maintain", help="expire old snapshots, compact small files, remove orphan files")
    p.add_argument("--tables", nargs="+", metavar="TABLE", help="only these tables")
    p.set_defaults(func=cmd_maintain)

    p = sub.add_parser("check", help="does each table's catalog entry name its newest commit, and are its data "
                                     "files there? (exit 1 if not; changes nothing)")
    p.add_argument("--tables", nargs="+", metavar="TABLE", help="only these tables")
    p.add_argument("--no-data-files", action="store_true", help="skip listing the current snapshots' data files")
    p.set_defaults(func=cmd_check)

    cat = subparsers.add_parser("catalog", help="the analysts' SQL catalog (DuckDB locally, Athena on AWS)")
    csub = cat.add_subparsers(dest="catalog_command", required=True, metavar="CATALOG_COMMAND")
    p = csub.add_parser("refresh", help="point every view at its table's current snapshot")
    p.set_defaults(func=cmd_refresh)


def _lake(settings: Settings):
    from lakehouse.lake import Lake

    return Lake.from_settings(settings)


def cmd_tables(args, settings: Settings) -> int:
    from rich.table import Table

    import schemas
    from lakehouse.cli import console

    lake = _lake(settings)
    table = Table(title=f"Tables in {settings.lake_root}", title_justify="left")
    for col in ("table", "owner", "snapshot", "committed", "by run", "rows", "files"):
        table.add_column(col, justify="right" if col in ("rows", "files") else "left")
    for name, ds in schemas.catalog().items():
        if args.zone and ds.zone_root != args.zone:
            continue
        hist = lake.history(ds)
        cur = next((h for h in hist if h["current"]), None)
        if cur is None:
            table.add_row(name, ds.owner, "-", "", "", "0", "0")
            continue
        table.add_row(name, ds.owner, str(cur["snapshot_id"]), cur["committed_at"], cur["run_id"],
                      f"{cur['total_records']:,}", str(len(lake.files(ds))))
    console.print(table)
    return 0


def cmd_history(args, settings: Settings) -> int:
    from rich.table import Table

    import schemas
    from lakehouse.cli import console

    ds = schemas.get(args.table)
    hist = _lake(settings).history(ds)
    if not hist:
        console.print(f"{ds.qualified_name} has no snapshot yet (never written)")
        return 0
    table = Table(title=f"{ds.qualified_name}: {len(hist)} snapshot(s), newest first", title_justify="left")
    for col in ("snapshot", "committed", "operation", "run", "stage", "replaced", "added", "removed", "rows"):
        table.add_column(col, justify="right" if col in ("added", "removed", "rows") else "left")
    for h in reversed(hist[-args.limit:]):
        table.add_row(("* " if h["current"] else "") + str(h["snapshot_id"]), h["committed_at"], h["operation"],
                      h["run_id"], h["stage"], h["replaced"], f"{h['added_records']:,}", f"{h['deleted_records']:,}",
                      f"{h['total_records']:,}")
    console.print(table)
    console.print("[dim]* current. Read an earlier state with `msp sql --as-of RUN_ID \"SELECT ...\"`.[/]")
    return 0


def cmd_maintain(args, settings: Settings) -> int:
    from rich.table import Table

    import schemas
    from lakehouse.cli import console
    from lakehouse.context import new_run_id
    from lakehouse.environment import sql_catalog
    from lakehouse.maintenance import maintain

    lake = _lake(settings)
    datasets = [schemas.get(t) for t in args.tables] if args.tables else None
    results = maintain(lake, settings, new_run_id(), datasets)
    sql_catalog(settings).refresh(lake)
    table = Table(title="Maintenance", title_justify="left")
    for col in ("table", "snapshots", "expired", "compacted", "files", "orphans removed", "seconds"):
        table.add_column(col)
    for r in results:
        if r.snapshots_expired or r.partitions_compacted or r.orphans_removed:
            table.add_row(r.table, str(r.snapshots_before), str(r.snapshots_expired), str(r.partitions_compacted),
                          f"{r.files_before} -> {r.files_after}", str(r.orphans_removed), f"{r.seconds:.2f}")
    console.print(table)
    console.print(f"{len(results)} tables checked; catalog refreshed")
    return 0


def cmd_check(args, settings: Settings) -> int:
    from rich.table import Table

    import schemas
    from lakehouse.cli import console
    from lakehouse.lake_check import check

    lake = _lake(settings)
    datasets = [schemas.get(t) for t in args.tables] if args.tables else list(schemas.catalog().values())
    findings = check(lake, datasets, data_files=not args.no_data_files)
    if not findings:
        console.print(f"{len(datasets)} table(s) checked: every catalog entry names its newest metadata file"
                      + ("" if args.no_data_files else ", and every data file of the current snapshots is there"))
        return 0
    table = Table(title=f"Lake check: {len(findings)} finding(s) in {len({f.table for f in findings})} table(s)",
                  title_justify="left")
    for col in ("table", "finding", "detail"):
        table.add_column(col)
    for f in findings:
        table.add_row(f.table, f.kind, f.detail)
    console.print(table)
    console.print("What each finding means and what to do: docs/architecture.md, \"Checking a lake\"")
    return 1


def cmd_refresh(args, settings: Settings) -> int:
    from lakehouse.cli import console
    from lakehouse.environment import sql_catalog

    n = sql_catalog(settings).refresh(_lake(settings))
    console.print(f"{n} views point at their tables' current snapshots")
    return 0
