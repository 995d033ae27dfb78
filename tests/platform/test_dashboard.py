"""The monitoring dashboard on the shared tiny lake: built once, opened in headless Chromium, every panel drawn
with data; a broken or empty panel is a "no data" box and never breaks the build; the site is served on
localhost; `msp dashboard` prints the page's path."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from lakehouse.agents import Panel, registry
from lakehouse.dashboard import build
from lakehouse.dashboard.build import PLOTLY_ASSET, all_panels
from lakehouse.dashboard.serve import make_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTION = re.compile(r'<section class="panel"([^>]*)>(.*?)</section>', re.S)


@pytest.fixture(scope="module")
def built(pipeline_lake, tmp_path_factory):
    return build(pipeline_lake, tmp_path_factory.mktemp("dashboard"))


def rendered_dom(page: Path) -> str:
    """The page's DOM after its scripts ran (plotly draws the charts), as headless Chromium serialises it."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; scripts/prereqs.sh installs it "
                    "when run as root): the headless-browser check needs it")
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={page.parent / '.chromium'}", "--virtual-time-budget=30000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def sections(dom: str) -> dict[str, tuple[str, str]]:
    out = {}
    for attrs, body in SECTION.findall(dom):
        pid = re.search(r'data-panel="([^"]+)"', attrs).group(1)
        out[pid] = (attrs, body)
    return out


def test_every_declared_panel_renders_with_data_in_headless_chromium(built):
    declared = [p.id for _, p in all_panels()]
    agent_panels = [p.id for a, p in registry().panels()]
    assert agent_panels and set(agent_panels) <= set(declared)
    assert [p.id for p in built.panels] == declared
    assert not built.missing, "panels without data on the tiny lake:\n" + "\n".join(
        f"  {p.id} ({p.owner}): {p.reason}" for p in built.missing)
    page = built.path.read_text(encoding="utf-8")
    # plotly.js is a file next to the page: it opens with no server and no network
    assert (built.path.parent / PLOTLY_ASSET).stat().st_size > 1_000_000
    assert f'<script src="{PLOTLY_ASSET}">' in page
    assert not re.search(r'<script[^>]+src="(https?:)?//', page)

    found = sections(rendered_dom(built.path))
    assert list(found) == declared
    for p in built.panels:
        attrs, body = found[p.id]
        assert 'data-status="ok"' in attrs, (p.id, attrs)
        if p.chart in ("line", "bar"):
            # plotly drew the figure (the page's script marks the div) with at least one point or bar in it
            assert 'data-rendered="true"' in body and 'class="main-svg"' in body, f"{p.id}: no chart drawn"
            assert 'class="point' in body, f"{p.id}: the chart has no points or bars"
        elif p.chart == "table":
            rows = re.findall(r"<tr>", body.split("<tbody>", 1)[1]) if "<tbody>" in body else []
            assert len(rows) == min(p.rows, 200) and rows, f"{p.id}: table without rows"
        else:
            assert 'class="kpi-value"' in body, f"{p.id}: no figures"
    # the platform's panels read the run reports and the model registry of the lake
    stats = {p.id: p for p in built.panels}
    assert stats["system_run_seconds"].rows >= 3  # the fixture's three runs (daily, train, last day)
    assert stats["models_versions"].rows >= 1
    report = json.loads((built.path.parent / "panels.json").read_text())
    assert [r["id"] for r in report["panels"]] == declared and not report["problems"]


def test_a_failing_or_empty_panel_is_a_no_data_box_and_the_build_goes_on(pipeline_lake, tmp_path):
    panels = [("Platform", Panel("broken", "A panel over a table nobody declared",
                                 "SELECT month, n FROM analytics.no_such_table", chart="line", x="month", y=("n",))),
              ("Platform", Panel("nothing", "A panel whose query finds nothing",
                                 "SELECT run_id, seconds FROM run_reports WHERE false", chart="bar", x="run_id",
                                 y=("seconds",))),
              ("Platform", Panel("wrong_column", "A panel drawing a column its query does not return",
                                 "SELECT run_id FROM run_reports", chart="bar", x="run_id", y=("seconds",))),
              ("Platform", Panel("writer", "A panel that tries to write", "DELETE FROM run_reports", chart="table")),
              ("Platform", Panel("fine", "A panel with data", "SELECT count(*) AS runs FROM run_reports", chart="kpi",
                                 y=("runs",)))]
    dashboard = build(pipeline_lake, tmp_path / "site", panels=panels)
    status = {p.id: (p.status, p.reason) for p in dashboard.panels}
    assert status["broken"][0] == "error" and "no_such_table" in status["broken"][1]
    assert "no dataset of that name is declared" in status["broken"][1]
    assert status["nothing"] == ("empty", "the query returned no rows")
    assert status["wrong_column"][0] == "error" and "no column seconds" in status["wrong_column"][1]
    assert status["writer"][0] == "error" and "read-only" in status["writer"][1]
    assert status["fine"] == ("ok", "")
    assert [p.id for p in dashboard.missing] == ["broken", "nothing", "wrong_column", "writer"]
    page = dashboard.path.read_text(encoding="utf-8")
    found = sections(page)
    for pid in ("broken", "nothing", "wrong_column", "writer"):
        assert "no data:</strong>" in found[pid][1], pid
    assert "4 panel(s) without data" in page


def test_the_site_is_served_on_localhost(built):
    server = make_server(built.path.parent, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        with urllib.request.urlopen(f"{base}/index.html", timeout=30) as r:
            assert r.status == 200 and b'data-panel="system_last_run"' in r.read()
        with urllib.request.urlopen(f"{base}/{PLOTLY_ASSET}", timeout=30) as r:
            assert r.status == 200 and len(r.read()) > 1_000_000
    finally:
        server.shutdown()
        server.server_close()


def test_msp_dashboard_prints_the_page_and_its_panels(pipeline_lake, tmp_path, monkeypatch, capsys):
    from lakehouse.cli import main

    for key, value in {"MSP_HOME": str(pipeline_lake.home), "MSP_CPI__CHURN_HORIZON_DAYS": "30",
                       "MSP_CPI__CHURN_MIN_TRAIN_POSITIVES": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MSP_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "dash"
    assert main(["dashboard", "--out", str(out), "--strict"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "index.html") in printed.replace("\n", "")
    assert f"{len(all_panels())}/{len(all_panels())} panels with data" in printed
