"""Quality results people read: JSON kept in the lake and an HTML page per dataset and run.

Layout under the lake root::

    _meta/quality/<dataset>/runs/<run id>.json   # the full result of one gate run of one dataset
    _meta/quality/<dataset>/runs/<run id>.html   # the same, as a page: every rule, its result, failing rows
    _meta/quality/<dataset>/latest.json          # copy of the newest result (what `msp quality` prints)
    _meta/quality/<dataset>/days/<dt>.json        # per-day row and null counts, the baseline of the next day
    _meta/quality/index.html                      # the newest result of every dataset
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.lake import Lake

ROOT = "_meta/quality"
STATUS_ORDER = ("failed", "warned", "passed", "no_data")


@dataclass
class DatasetResult:
    """What the gate found for one dataset in one run (serialised as the result JSON)."""

    dataset: str
    run_id: str
    dates: list[str]
    status: str = "passed"  # passed | warned (published, with refused rows or warnings) | failed | no_data
    published: bool = False  # processed and quarantine were written (never for a failed dataset)
    counts: dict[str, int] = field(default_factory=dict)
    per_day: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    rejected_files: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    gx: dict[str, Any] = field(default_factory=dict)
    suite: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    generated_at: str = ""

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.errors.append(message)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False, default=str)


def result_paths(dataset: str, run_id: str) -> tuple[str, str]:
    base = f"{ROOT}/{dataset}/runs/{run_id}"
    return f"{base}.json", f"{base}.html"


def day_stats_path(dataset: str, dt: str) -> str:
    return f"{ROOT}/{dataset}/days/{dt}.json"


def save(lake: Lake, result: DatasetResult) -> str:
    """Write the result JSON, its HTML page and the dataset's ``latest.json``; returns the HTML path."""
    text = result.to_json()
    json_path, html_path = result_paths(result.dataset, result.run_id)
    lake.write_text(json_path, text)
    lake.write_text(f"{ROOT}/{result.dataset}/latest.json", text)
    return lake.write_text(html_path, render_dataset(json.loads(text)))


def latest(lake: Lake) -> list[dict[str, Any]]:
    """The newest result of every dataset that has one."""
    out = []
    for rel in lake.list_files(ROOT):
        parts = rel.split("/")
        if parts[-1] == "latest.json" and len(parts) >= 2:
            text = lake.read_text(rel)
            if text:
                out.append(json.loads(text))
    return sorted(out, key=lambda r: r["dataset"])


def save_index(lake: Lake) -> str:
    return lake.write_text(f"{ROOT}/index.html", render_index(latest(lake)))


# ---- HTML ----------------------------------------------------------------------------------------------
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:1300px}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}th,td{border:1px solid #dde;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f3f5f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.d{white-space:nowrap}.passed{color:#17803d}.warned{color:#b36b00}.failed{color:#c0262d}.no_data{color:#777}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:.7rem;color:#fff;font-size:.85em}
.b-passed{background:#17803d}.b-warned{background:#b36b00}.b-failed{background:#c0262d}.b-no_data{background:#888}
.b-critical{background:#c0262d}.b-warning{background:#b36b00}.b-info{background:#4b6aa8}
code{background:#f3f5f9;padding:0 .2rem}details{margin:.2rem 0}small{color:#667}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class=n>{c}</td>" if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _badge(text: str) -> str:
    return f"<span class='badge b-{_e(text)}'>{_e(text)}</span>"


def render_dataset(r: dict[str, Any]) -> str:
    c = r.get("counts", {})
    dates = r.get("dates") or []
    span = f"{dates[0]} → {dates[-1]}" if dates else ""
    parts = [f"<h1>Quality gate: {_e(r['dataset'])} {_badge(r['status'])}</h1>",
             f"<p><small>run {_e(r['run_id'])} · days {_e(span)} · suite {_e(r.get('suite') or 'baseline only')}"
             f" · generated {_e(r.get('generated_at'))}</small></p>"]
    if r.get("errors"):
        parts.append("<h2 class=failed>Errors (nothing was published for this dataset)</h2><ul>" +
                     "".join(f"<li class=failed>{_e(e)}</li>" for e in r["errors"]) + "</ul>")
    if c:
        outcome = ("yes: raw = processed + quarantined + duplicates, as published" if c.get("reconciled") else
                   "nothing published: the counts are what the gate would have published")
        parts.append("<h2>Rows</h2>" + _table(
            ["raw rows", "processed", "quarantined", "duplicates removed", "reconciled"],
            [[f"{c.get('raw', 0):,}", f"{c.get('processed', 0):,}", f"{c.get('quarantined', 0):,}",
              f"{c.get('duplicates', 0):,}", outcome]], {0, 1, 2, 3}))
    if r.get("per_day"):
        rows = [[_e(d), f"{v.get('raw', 0):,}", f"{v.get('processed', 0):,}", f"{v.get('quarantined', 0):,}",
                 f"{v.get('duplicates', 0):,}"] for d, v in sorted(r["per_day"].items())]
        parts.append("<details><summary>Per day</summary>" +
                     _table(["day", "raw", "processed", "quarantined", "duplicates"], rows, {1, 2, 3, 4}) +
                     "</details>")
    if r.get("checks"):
        parts.append("<h2>Dataset checks</h2>" + _table(
            ["check", "result", "detail"],
            [[_e(k["check"]), f"<span class={_e(k['status'])}>{_e(k['status'])}</span>", _e(k.get("message"))]
             for k in r["checks"]]))
    if r.get("drift") or r.get("rejected_files"):
        rows = [[_e(d.get("dt")), _e(d.get("file")), _e(d.get("column")), _e(d.get("kind")),
                 _badge(d.get("severity", "warning")), _e(d.get("message"))] for d in r.get("drift", [])]
        rows += [[_e(f.get("dt")), _e(f.get("source_file")), _e(f.get("column")), "file rejected at ingestion",
                  _badge("critical"), _e(f"line {f.get('line')}: {f.get('reason')}")]
                 for f in r.get("rejected_files", []) if not f.get("drift")]
        parts.append("<h2>Schema drift and rejected files</h2>" +
                     _table(["day", "file", "column", "kind", "severity", "message"], rows))
    if r.get("rules"):
        rows = []
        for rule in r["rules"]:
            failed = rule.get("failed_rows")
            ok = rule.get("success")
            result = ("<span class=passed>pass</span>" if ok else
                      f"<span class={'failed' if rule['severity'] == 'critical' else 'warned'}>fail</span>")
            if failed is None:
                result = "<span class=no_data>not evaluated</span>"
            samples = rule.get("samples") or []
            sample_html = ""
            if samples:
                cols = list(samples[0].keys())
                sample_html = ("<details><summary>" + f"{len(samples)} sample failing row(s)</summary>" +
                               _table(cols, [[_e(s.get(k)) for k in cols] for s in samples]) + "</details>")
            gx = rule.get("gx") or {}
            gx_text = ""
            if gx:
                values = [v for v in gx.get("partial_unexpected_list") or [] if v not in ("None", "NaT", "nan")]
                gx_text = (f"<small>GX: {'pass' if gx.get('success') else 'fail'}, "
                           f"{_e(gx.get('unexpected_count'))} unexpected of {_e(gx.get('element_count'))}"
                           + (f"; e.g. {_e(', '.join(values))}" if values else "")
                           + (f"; agreement: {_e(rule.get('agreement'))}" if rule.get("agreement") else "")
                           + "</small>")
            rows.append([f"<code>{_e(rule['id'])}</code><br><small>{_e(rule.get('type'))}</small>",
                         _badge(rule["severity"]), _e(rule.get("source")), _e(rule.get("description")),
                         result, "" if failed is None else f"{failed:,}", gx_text + sample_html])
        parts.append("<h2>Rules</h2>" + _table(
            ["rule", "severity", "from", "what it checks", "result", "failing rows", "details"], rows, {5}))
    gx = r.get("gx") or {}
    if gx:
        agreement = gx.get("agreement") or {}
        same = sum(1 for v in agreement.values() if v in ("rows", "count"))
        parts.append("<h2>Great Expectations</h2><p>" + _e(
            f"engine {gx.get('engine')}, {gx.get('rows', 0):,} rows validated in {gx.get('seconds', 0)} s; "
            f"suite success: {gx.get('success')}. {gx.get('note', '')} Great Expectations and the gate flagged the "
            f"same rows for {same} of {len(agreement)} rules"
            + (" (compared row by row)." if gx.get("engine") == "pandas" else " (compared by count).")) + "</p>")
        if gx.get("disagreements"):
            parts.append("<ul>" + "".join(f"<li class=failed>{_e(d)}</li>" for d in gx["disagreements"]) + "</ul>")
    if r.get("warnings"):
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li class=warned>{_e(w)}</li>" for w in r["warnings"]) +
                     "</ul>")
    return _page(f"Quality: {r['dataset']}", "".join(parts))


def render_index(results: list[dict[str, Any]]) -> str:
    rows = []
    for r in sorted(results, key=lambda x: (STATUS_ORDER.index(x["status"]) if x["status"] in STATUS_ORDER else 9,
                                            x["dataset"])):
        c = r.get("counts", {})
        failing = [f"{x['id']} ({x['failed_rows']:,})" for x in r.get("rules", []) if x.get("failed_rows")]
        link = f"{_e(r['dataset'])}/runs/{_e(r['run_id'])}.html"
        dates = r.get("dates") or [""]
        held = "" if r.get("published") else " <small>(not published)</small>"
        rows.append([f"<a href='{link}'>{_e(r['dataset'])}</a>", _badge(r["status"]),
                     f"<span class=d>{_e(dates[0])}</span><br><span class=d>→ {_e(dates[-1])}</span>",
                     f"{c.get('raw', 0):,}", f"{c.get('processed', 0):,}{held if c else ''}",
                     f"{c.get('quarantined', 0):,}", f"{c.get('duplicates', 0):,}",
                     _e(", ".join(failing[:6]) + (" …" if len(failing) > 6 else "")),
                     _e("; ".join(r.get("errors", []))[:300])])
    body = ("<h1>Quality gate: latest results</h1>" +
            _table(["dataset", "status", "days", "raw", "processed", "quarantined", "duplicates", "rules with failures",
                    "errors"], rows, {3, 4, 5, 6}))
    return _page("Quality gate", body)
