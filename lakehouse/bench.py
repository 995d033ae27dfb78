"""``msp bench``: run the whole pipeline at one or more scales and report how it performs.

For each scale: generate the sample MSP into a fresh folder, run every stage over its full history,
and record wall time per stage, rows per second, peak memory of this Python process and of the Spark
JVM, and how time grows from one scale to the next. Reports are written as JSON and Markdown.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import platform
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psutil

from lakehouse.config import Settings


class JvmMemorySampler:
    """Samples the RSS of the Java processes started by this process (the Spark driver JVM)."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    if "java" in child.name():
                        total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@dataclass
class StageTiming:
    name: str
    seconds: float
    rows_out: int
    rows_per_second: float


@dataclass
class ScaleResult:
    scale: str
    generate_seconds: float
    raw_rows: int
    run_seconds: float
    stages: list[StageTiming] = field(default_factory=list)
    python_peak_mb: float = 0.0
    jvm_peak_mb: float = 0.0
    ok: bool = True


def _python_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_scale(base: Settings, scale: str, seed: int, workdir: Path, progress=None) -> ScaleResult:
    from lakehouse.context import date_range
    from lakehouse.runner import StageObserver, run_pipeline
    from lakehouse.synth import generate

    home = workdir / scale
    settings = base.with_overrides(home=str(home), lake_root="", landing_root="", truth_root="", duckdb_path="")
    t0 = time.perf_counter()
    report = generate(scale, seed, Path(settings.landing_root), Path(settings.truth_root), progress=progress)
    gen_seconds = time.perf_counter() - t0
    from lakehouse.demo import landing_dates

    first, last = landing_dates(settings)
    with JvmMemorySampler() as jvm:
        summary = run_pipeline(settings, date_range(date.fromisoformat(first), date.fromisoformat(last)),
                               observer=StageObserver())
    outputs: dict[str, int] = {}
    stage_rows: dict[str, int] = {}
    for name, c in summary.counts.items():
        outputs[name] = c["rows_out"]
    # Rows a stage produced: the datasets whose zone the stage writes (ingest: raw.*, quality: processed.*).
    from lakehouse.stages import discover

    registry = discover()
    for st in summary.stages:
        writes = registry[st.name].writes
        stage_rows[st.name] = sum(r for ds, r in outputs.items() if any(fnmatch.fnmatchcase(ds, w) for w in writes))
    result = ScaleResult(
        scale=scale, generate_seconds=round(gen_seconds, 2), raw_rows=sum(report.rows.values()),
        run_seconds=summary.seconds, python_peak_mb=round(_python_peak_mb(), 1),
        jvm_peak_mb=round(jvm.peak_bytes / 2**20, 1), ok=summary.ok,
        stages=[StageTiming(s.name, s.seconds, stage_rows.get(s.name, 0),
                            round(stage_rows.get(s.name, 0) / s.seconds, 1) if s.seconds else 0.0)
                for s in summary.stages],
    )
    return result


def growth(results: list[ScaleResult]) -> list[dict[str, float | str]]:
    """How run time grows relative to data volume between consecutive scales (1.0 = linear)."""
    out = []
    for a, b in itertools.pairwise(results):
        rows_x = b.raw_rows / a.raw_rows if a.raw_rows else float("nan")
        time_x = b.run_seconds / a.run_seconds if a.run_seconds else float("nan")
        out.append({"from": a.scale, "to": b.scale, "rows_factor": round(rows_x, 2),
                    "time_factor": round(time_x, 2),
                    "time_per_row_factor": round(time_x / rows_x, 2) if rows_x else float("nan")})
    return out


def render_markdown(results: list[ScaleResult], machine: dict[str, str]) -> str:
    lines = ["# Benchmark", "", f"Machine: {machine['cpus']} cores, {machine['memory_gb']} GiB, "
             f"Python {machine['python']}, {machine['platform']}; {machine['when']}", "",
             "| scale | raw rows | generate s | pipeline s | rows/s (pipeline) | Python peak MB | JVM peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rps = r.raw_rows / r.run_seconds if r.run_seconds else 0
        lines.append(f"| {r.scale} | {r.raw_rows:,} | {r.generate_seconds:.1f} | {r.run_seconds:.1f} | "
                     f"{rps:,.0f} | {r.python_peak_mb:,.0f} | {r.jvm_peak_mb:,.0f} |")
    for r in results:
        lines += ["", f"## Stages at scale {r.scale}", "", "| stage | seconds | rows out | rows/s |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {s.name} | {s.seconds:.1f} | {s.rows_out:,} | {s.rows_per_second:,.0f} |" for s in r.stages]
    g = growth(results)
    if g:
        lines += ["", "## Growth between scales", "", "| from → to | rows × | time × | time per row × |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {x['from']} → {x['to']} | {x['rows_factor']} | {x['time_factor']} | "
                  f"{x['time_per_row_factor']} |" for x in g]
    return "\n".join(lines) + "\n"


def run_bench(settings: Settings, scales: list[str], seed: int, out: Path, workdir: Path, console) -> Path:
    results = []
    for scale in scales:
        console.rule(f"Benchmark at scale {scale}")
        r = bench_scale(settings, scale, seed, workdir)
        console.print(f"  generated {r.raw_rows:,} rows in {r.generate_seconds:.1f}s; pipeline {r.run_seconds:.1f}s; "
                      f"JVM peak {r.jvm_peak_mb:,.0f} MB; Python peak {r.python_peak_mb:,.0f} MB")
        results.append(r)
    machine = {"cpus": str(psutil.cpu_count()), "memory_gb": f"{psutil.virtual_memory().total / 2**30:.0f}",
               "python": platform.python_version(), "platform": platform.platform(),
               "when": datetime.now(UTC).isoformat(timespec="seconds")}
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    payload = {"machine": machine, "results": [asdict(r) for r in results], "growth": growth(results)}
    (out / f"bench-{stamp}.json").write_text(json.dumps(payload, indent=1))
    md = out / f"bench-{stamp}.md"
    md.write_text(render_markdown(results, machine))
    console.print(f"report: {md}")
    return md


def cmd_bench(args, settings: Settings) -> int:
    import tempfile

    from lakehouse.cli import console

    scales = [s.strip() for s in args.scale.split(",") if s.strip()]
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="msp-bench-"))
    run_bench(settings, scales, args.seed, Path(args.out), workdir, console)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark the pipeline at one or more scales")
    p.add_argument("--scale", default="tiny,small", help="comma-separated scales, smallest first (default tiny,small)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", default="bench-results", help="folder for the JSON and Markdown reports")
    p.add_argument("--workdir", help="where to generate and run (default: a new temp folder)")
    p.set_defaults(func=cmd_bench)
