"""Build the monitoring dashboard: every declared panel's query against the lake, drawn into one static page.

The page (``index.html``) and plotly.js (``plotly.min.js``, written once next to it) open from a file with no
server and no network. Each panel is a ``<section class="panel" data-panel=ID data-status=STATUS>``: a chart
(a plotly figure, drawn by the page's script), a table, or a row of numbers; a panel whose query fails, whose
rows miss the columns it draws, or that returns no rows is a box saying "no data" and why, and the build
carries on and reports it (``panels.json`` next to the page lists every panel with its status and reason).

Queries run on one read-only, sandboxed connection to the analysts' catalog (:mod:`lakehouse.catalog`), with
the platform's tables (:mod:`lakehouse.dashboard.sources`) added as temporary tables.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.agents import PANEL_CHARTS, PANEL_GROUPS, PLATFORM, Panel, registry

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.config import Settings

log = logging.getLogger(__name__)
PLOTLY_ASSET = "plotly.min.js"
GROUP_TITLES = {"system": "System health", "agents": "Agent performance", "business": "Business metrics"}
#: Rows a table panel shows (the rest are counted, not drawn).
TABLE_ROWS = 200
SERIES = "series"
MISSING_TABLE = re.compile(r"Table with name (\w+) does not exist")
FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T].*)?$")


@dataclass
class PanelResult:
    id: str
    title: str
    group: str
    owner: str
    chart: str
    status: str = "ok"  # ok | empty | error
    reason: str = ""
    rows: int = 0
    seconds: float = 0.0
    sql: str = ""
    description: str = ""


@dataclass
class Dashboard:
    path: Path
    panels: list[PanelResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def missing(self) -> list[PanelResult]:
        """Panels drawn as "no data" (their query failed or returned nothing)."""
        return [p for p in self.panels if p.status != "ok"]


def default_output(settings: Settings) -> Path:
    return settings.home / "dashboard"


def all_panels() -> list[tuple[str, Panel]]:
    """(owner title, panel) of every panel: the platform's, then each agent's, by group."""
    from lakehouse.dashboard.panels import platform_panels

    found: list[tuple[str, Panel]] = [("Platform", p) for p in platform_panels()]
    found += [("Platform" if a.name == PLATFORM else a.title, p) for a, p in registry().panels()]
    order = {g: i for i, g in enumerate(PANEL_GROUPS)}
    return sorted(found, key=lambda op: order.get(op[1].group, len(order)))  # stable: declaration order kept


def check_declarations(panels: list[tuple[str, Panel]]) -> list[str]:
    """Problems with the declarations themselves (duplicate ids, unknown charts or groups)."""
    problems, seen = [], set()
    for owner, p in panels:
        if p.id in seen:
            problems.append(f"panel id {p.id!r} ({owner}) is declared twice")
        seen.add(p.id)
        if p.chart not in PANEL_CHARTS:
            problems.append(f"panel {p.id} ({owner}): chart {p.chart!r} is not one of {', '.join(PANEL_CHARTS)}")
        if p.group not in PANEL_GROUPS:
            problems.append(f"panel {p.id} ({owner}): group {p.group!r} is not one of {', '.join(PANEL_GROUPS)}")
    return problems


# ---- querying --------------------------------------------------------------------------------------------------
def connect(settings: Settings):
    """The catalog's read-only connection with the platform's tables added (temporary tables)."""
    from lakehouse.catalog import DuckDBCatalog
    from lakehouse.dashboard.sources import platform_tables
    from lakehouse.lake import Lake

    if settings.platform.catalog != "duckdb":
        raise ValueError(f"msp dashboard reads the local DuckDB catalog, but platform.catalog is "
                         f"{settings.platform.catalog!r}: build it where the lake has one (the AWS stack has its own "
                         "CloudWatch dashboard)")
    lake = Lake(settings.lake_root, catalog=None)  # small files only: no table catalog needed
    tables = platform_tables(lake)
    con = DuckDBCatalog(settings).connect()
    for name, frame in tables.items():
        con.register(f"_{name}_frame", frame)
        con.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * FROM "_{name}_frame"')
        con.unregister(f"_{name}_frame")
    return con


def run_query(con, panel: Panel) -> pd.DataFrame:
    from lakehouse.catalog import check_read_only

    check_read_only(con, panel.sql)
    return con.execute(panel.sql).df()


def evaluate(con, owner: str, panel: Panel) -> tuple[PanelResult, pd.DataFrame | None]:
    """Run one panel's query; the result says whether it can be drawn, and why not."""
    result = PanelResult(panel.id, panel.title, panel.group, owner, panel.chart, sql=panel.sql,
                         description=panel.description)
    t0 = time.perf_counter()
    frame = None
    try:
        frame = run_query(con, panel)
    except Exception as exc:  # a broken panel must not break the dashboard
        result.status, result.reason = "error", f"query failed: {type(exc).__name__}: {_first_line(exc)}"
        missing = MISSING_TABLE.search(str(exc))
        if missing:
            import schemas

            declared = {ds.name for ds in schemas.catalog().values()}
            result.reason += (" (declared after the catalog was built: `msp catalog refresh`)"
                              if missing.group(1) in declared else " (no dataset of that name is declared)")
    result.seconds = round(time.perf_counter() - t0, 3)
    if frame is None:
        return result, None
    result.rows = len(frame)
    needed = [c for c in ([panel.x] if panel.x else []) + list(panel.y) if c not in frame.columns]
    if needed:
        result.status = "error"
        result.reason = (f"the query returns no column {', '.join(needed)} (it returns "
                         f"{', '.join(map(str, frame.columns)) or 'nothing'})")
    elif panel.chart in ("line", "bar") and (not panel.x or not panel.y):
        result.status, result.reason = "error", f"a {panel.chart} panel needs x and y"
    elif frame.empty:
        result.status, result.reason = "empty", "the query returned no rows"
    elif panel.chart in ("line", "bar", "kpi") and panel.y and frame[list(panel.y)].isna().all().all():
        result.status, result.reason = "empty", f"every value of {', '.join(panel.y)} is empty"
    return result, frame


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


# ---- drawing ---------------------------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """A JSON-friendly cell value (decimals to floats, timestamps to ISO text, NaN/NaT to None)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        try:
            import pandas as pd

            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
        return value.isoformat()
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def _column(frame: pd.DataFrame, col: str) -> list[Any]:
    return [_plain(v) for v in frame[col].tolist()]


#: plotly's default colours; the figures are plain plotly.js JSON (no Python-side figure objects: faster).
COLORWAY = ["#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A", "#19d3f3", "#FF6692", "#B6E880", "#FF97FF",
            "#FECB52"]
AXIS = {"automargin": True, "gridcolor": "#ebf0f8", "zerolinecolor": "#ebf0f8", "linecolor": "#d5dce3"}


def figure(panel: Panel, frame: pd.DataFrame) -> dict[str, Any]:
    """The plotly.js figure (data and layout) of a line or bar panel; a ``series`` column splits the traces."""
    groups = ([("(none)" if _plain(k) is None else str(k), g) for k, g in frame.groupby(SERIES, sort=False,
                                                                                    dropna=False)]
              if SERIES in frame.columns else [("", frame)])
    data = []
    for label, rows in groups:
        for y in panel.y:
            name = " ".join(part for part in (label, y if len(panel.y) > 1 or not label else "") if part)
            trace = {"x": _column(rows, panel.x), "y": _column(rows, y), "name": name or y}
            data.append({"type": "scatter", "mode": "lines+markers", **trace} if panel.chart == "line"
                        else {"type": "bar", **trace})
    layout: dict[str, Any] = {
        "margin": {"l": 50, "r": 10, "t": 30, "b": 40}, "height": 340, "colorway": COLORWAY,
        "paper_bgcolor": "white", "plot_bgcolor": "white", "font": {"color": "#2a3f5f"}, "hovermode": "closest",
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"}, "barmode": "group", "showlegend": True,
        "xaxis": {**AXIS, "title": {"text": panel.x}}, "yaxis": {**AXIS, "title": {"text": ", ".join(panel.y)}}}
    if _categorical(frame[panel.x]):
        layout["xaxis"].update(type="category", categoryorder="array",
                               categoryarray=list(dict.fromkeys(str(v) for v in _column(frame, panel.x))))
    return {"data": data, "layout": layout}


def _categorical(values: pd.Series) -> bool:
    """Text that is not a full date or time (a month "2024-03", a quarter, a name): one evenly spaced category
    per value, in the query's order, rather than plotly's guess of a date axis."""
    if values.dtype != object:
        return False
    texts = [v for v in values.dropna().tolist() if isinstance(v, str)]
    return bool(texts) and not all(FULL_DATE.match(v) for v in texts)


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.head(TABLE_ROWS).itertuples(index=False))
    more = (f'<p class="more">{len(frame) - TABLE_ROWS:,} more row(s) not shown</p>'
            if len(frame) > TABLE_ROWS else "")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>{more}'


def kpi_html(panel: Panel, frame: pd.DataFrame) -> str:
    row = frame.iloc[0]
    cols = list(panel.y) or list(frame.columns)
    items = "".join(f'<div class="kpi"><div class="kpi-value">{html.escape(_cell(row[c]))}</div>'
                    f'<div class="kpi-label">{html.escape(str(c))}</div></div>' for c in cols)
    return f'<div class="kpis">{items}</div>'


def panel_html(result: PanelResult, panel: Panel, frame: pd.DataFrame | None,
               figures: dict[str, dict[str, Any]]) -> str:
    pid = html.escape(panel.id)
    if result.status != "ok" or frame is None:
        body = (f'<div class="nodata"><strong>no data:</strong> {html.escape(result.reason)}</div>')
    elif panel.chart in ("line", "bar"):
        figures[panel.id] = figure(panel, frame)
        body = f'<div class="chart" id="chart-{pid}"></div>'
    elif panel.chart == "kpi":
        body = kpi_html(panel, frame)
    else:
        body = table_html(frame)
    desc = f'<p class="desc">{html.escape(panel.description)}</p>' if panel.description else ""
    return (f'<section class="panel" id="panel-{pid}" data-panel="{pid}" data-chart="{html.escape(panel.chart)}" '
            f'data-status="{html.escape(result.status)}" data-rows="{result.rows}">'
            f'<h3>{html.escape(panel.title)}</h3><p class="owner">{html.escape(result.owner)} · {pid} · '
            f'{result.rows:,} row(s) · {result.seconds:.2f} s</p>{desc}{body}'
            f'<details><summary>SQL</summary><pre>{html.escape(panel.sql)}</pre></details></section>')


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{background:#1d2733;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;font-size:13px;color:#c9d3dd}
nav{padding:8px 24px;background:#e6ebf0;font-size:14px}nav a{margin-right:16px;color:#1d4f91}
main{padding:8px 24px 40px}h2{margin:24px 0 8px;font-size:18px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
.panel{background:#fff;border:1px solid #d5dce3;border-radius:6px;padding:12px 14px;min-width:0}
.panel h3{margin:0;font-size:15px}.owner{margin:2px 0 6px;font-size:12px;color:#6b7785}
.desc{margin:0 0 8px;font-size:12.5px;color:#3d4855}.chart{height:340px}
.nodata{background:#fff6e5;border:1px dashed #e0a030;padding:18px;border-radius:4px;font-size:14px}
.table-wrap{max-height:340px;overflow:auto}table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{border-bottom:1px solid #e3e8ed;padding:3px 6px;text-align:left;white-space:nowrap}
th{position:sticky;top:0;background:#f0f3f6}.more{font-size:12px;color:#6b7785}
.kpis{display:flex;flex-wrap:wrap;gap:12px}.kpi{background:#f0f3f6;border-radius:4px;padding:10px 16px;min-width:90px}
.kpi-value{font-size:22px;font-weight:600}.kpi-label{font-size:12px;color:#6b7785}
details{margin-top:6px;font-size:12px}pre{white-space:pre-wrap;background:#f6f8fa;padding:6px}
.problems{background:#fff6e5;border:1px solid #e0a030;padding:8px 12px;border-radius:4px;font-size:13px}
"""

SCRIPT = """
(function () {
  var only = new URLSearchParams(window.location.search).get('group');  // index.html?group=agents
  if (only) {
    document.querySelectorAll('.group').forEach(function (g) {
      if (g.getAttribute('data-group') !== only) { g.style.display = 'none'; }
    });
  }
  var figures = JSON.parse(document.getElementById('figures').textContent);
  Object.keys(figures).forEach(function (id) {
    var el = document.getElementById('chart-' + id);
    if (!el || typeof Plotly === 'undefined') { return; }
    Plotly.newPlot(el, figures[id].data, figures[id].layout, {responsive: true, displayModeBar: false})
      .then(function () { el.setAttribute('data-rendered', 'true'); });
  });
  document.body.setAttribute('data-ready', 'true');
})();
"""


def page(settings: Settings, sections: dict[str, list[str]], figures: dict[str, dict[str, Any]],
         results: list[PanelResult], problems: list[str]) -> str:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    missing = [r for r in results if r.status != "ok"]
    nav = "".join(f'<a href="#{g}">{html.escape(GROUP_TITLES.get(g, g))} ({len(sections[g])})</a>'
                  for g in sections) + '<a href="?">all</a>' + "".join(
                  f'<a href="?group={g}">only {html.escape(GROUP_TITLES.get(g, g).lower())}</a>' for g in sections)
    notes = ""
    if missing or problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
        items += "".join(f'<li><a href="#panel-{html.escape(r.id)}">{html.escape(r.title)}</a> ({html.escape(r.id)}):'
                         f" {html.escape(r.reason)}</li>" for r in missing)
        notes = f'<div class="problems"><strong>{len(missing)} panel(s) without data</strong><ul>{items}</ul></div>'
    body = "".join(f'<div class="group" data-group="{g}"><h2 id="{g}">{html.escape(GROUP_TITLES.get(g, g))}</h2>'
                   f'<div class="grid">{"".join(items)}</div></div>' for g, items in sections.items())
    figures_json = json.dumps(figures, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>MSP lakehouse dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style>
<script src="{PLOTLY_ASSET}"></script></head>
<body><header><h1>MSP lakehouse: monitoring dashboard</h1>
<p>Built {now} from {html.escape(str(settings.lake_root))} (catalog {html.escape(str(settings.duckdb_path))}) ·
{len(results)} panels, {len(results) - len(missing)} with data</p></header>
<nav>{nav}</nav><main>{notes}{body}</main>
<script type="application/json" id="figures">{figures_json}</script>
<script>{SCRIPT}</script></body></html>
"""


def write_plotly(out: Path) -> None:
    """plotly.js next to the page, written once (rewritten when the installed plotly's differs)."""
    from plotly.offline import get_plotlyjs

    asset = out / PLOTLY_ASSET
    text = get_plotlyjs()
    if not asset.exists() or asset.stat().st_size != len(text.encode("utf-8")):
        tmp = asset.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(asset)


def build(settings: Settings, out: Path | None = None,
          panels: list[tuple[str, Panel]] | None = None) -> Dashboard:
    """Query every panel (default: :func:`all_panels`; or ``(owner, panel)`` pairs) and write the page into
    ``out`` (default: ``<home>/dashboard``); returns where it is and how each panel came out."""
    t0 = time.perf_counter()
    out = Path(out) if out is not None else default_output(settings)
    out.mkdir(parents=True, exist_ok=True)
    panels = all_panels() if panels is None else list(panels)
    problems = check_declarations(panels)
    results: list[PanelResult] = []
    sections: dict[str, list[str]] = {}
    figures: dict[str, dict[str, Any]] = {}
    con = connect(settings)
    try:
        for owner, panel in panels:
            result, frame = evaluate(con, owner, panel)
            try:
                snippet = panel_html(result, panel, frame, figures)
            except Exception as exc:  # drawing failed (odd values): say so, keep going
                result.status, result.reason = "error", f"could not draw: {type(exc).__name__}: {_first_line(exc)}"
                figures.pop(panel.id, None)
                snippet = panel_html(result, panel, None, figures)
            results.append(result)
            sections.setdefault(panel.group, []).append(snippet)
    finally:
        con.close()
    write_plotly(out)
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page(settings, sections, figures, results, problems), encoding="utf-8")
    tmp.replace(index)
    dashboard = Dashboard(index, results, round(time.perf_counter() - t0, 3))
    (out / "panels.json").write_text(json.dumps({
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"), "seconds": dashboard.seconds,
        "problems": problems, "panels": [asdict(r) for r in results]}, indent=1, default=str), encoding="utf-8")
    log.info("dashboard %s: %d panels (%d without data) in %.1f s", index, len(results), len(dashboard.missing),
             dashboard.seconds)
    return dashboard
