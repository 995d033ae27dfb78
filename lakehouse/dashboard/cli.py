"""``msp dashboard``: build the monitoring dashboard from the lake; ``--serve`` serves it on localhost."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def register(subparsers) -> None:
    p = subparsers.add_parser("dashboard", help="build the monitoring dashboard (a static site) from the lake")
    p.add_argument("--out", type=Path, help="folder to write it to (default: <home>/dashboard)")
    p.add_argument("--serve", action="store_true", help="then serve it on localhost until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="port to serve on (default 8050; 0 picks a free one)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a panel has no data")
    p.set_defaults(func=cmd_dashboard)


def report(dashboard, console) -> None:
    """The page's path, and every panel drawn without data with its reason."""
    ok = len(dashboard.panels) - len(dashboard.missing)
    console.print(f"dashboard: {dashboard.path}  ({ok}/{len(dashboard.panels)} panels with data, "
                  f"{dashboard.seconds:.1f} s)", highlight=False)
    for p in dashboard.missing:
        console.print(f"  [yellow]no data[/] {p.id} ({p.owner}): {p.reason}", highlight=False)


def cmd_dashboard(args, settings: Settings) -> int:
    from lakehouse.cli import console
    from lakehouse.dashboard import build, serve

    dashboard = build(settings, args.out)
    report(dashboard, console)
    if args.serve:
        serve(dashboard.path.parent, args.host, args.port,
              announce=lambda url: console.print(f"serving {url}  (Ctrl-C stops)", highlight=False))
    return 1 if args.strict and dashboard.missing else 0
