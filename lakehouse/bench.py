"""``msp bench``: how the pipeline performs at each scale, and how long a scheduled day takes.

For each scale: generate the synthetic MSP's default window into a fresh folder, run every daily stage over
the whole history cold (a backfill, in one process), then the training stages; record wall time per stage,
rows per second and the peak memory of the process tree (Python, plus the JVM when the engine is Spark).

Then the scenario the platform is built for, **one new export day** on a lake that already holds the
window: generate the next day (``msp generate --start D --days 1``) and run ``msp run --date D`` as a new
process, timed end to end (start-up included), and once more with nothing new. Reports are written as JSON
and Markdown (``bench-results/``); docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil

from lakehouse.config import Settings


class PeakMemory:
    """Samples the memory of a process and its children (the run's stage workers, a Spark JVM, a subprocess
    run): the sum of their proportional set sizes (PSS, Linux), where a page shared by several processes
    counts once in all; elsewhere the sum of their resident sets. The workers are forked from the run, so
    they share its libraries' pages, and a sum of resident sets counts those once per worker: it overstated
    the tree by 15-25 % here (``peak_rss_mb`` keeps that sum for comparison with older reports)."""

    def __init__(self, pid: int | None = None, interval: float = 0.2):
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_rss_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            total = rss = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    info = p.memory_full_info()
                except (psutil.AccessDenied, AttributeError):  # no PSS here: resident set
                    try:
                        info = p.memory_info()
                    except psutil.Error:
                        continue
                except psutil.Error:
                    continue
                total += getattr(info, "pss", info.rss)
                rss += info.rss
            self.peak_bytes = max(self.peak_bytes, total)
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    @property
    def peak_rss_mb(self) -> float:
        return round(self.peak_rss_bytes / 2**20, 1)


@dataclass
class StageTiming:
    name: str
    seconds: float
    rows_out: int
    rows_per_second: float


@dataclass
class DayTiming:
    day: str
    new_rows: int
    seconds: float
    peak_mb: float
    ok: bool
    rerun_seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


@dataclass
class ScaleResult:
    scale: str
    engine: str
    generate_seconds: float
    raw_rows: int
    run_seconds: float
    train_seconds: float = 0.0
    stages: list[StageTiming] = field(default_factory=list)
    peak_mb: float = 0.0
    ok: bool = True
    day: DayTiming | None = None
    peak_rss_mb: float = 0.0


def _msp(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    env = {"MSP_HOME": str(settings.home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONHASHSEED": "0", "MSP_ENGINE": settings.platform.engine}
    return subprocess.run([sys.executable, "-m", "lakehouse.cli", *args], env=env, capture_output=True, text=True,
                          check=False)


def bench_day(settings: Settings, scale: str, seed: int, day: date) -> DayTiming:
    """Land one new export day and time ``msp run --date DAY`` as its own process, then a rerun."""
    from lakehouse.synth import generate

    report = generate(scale, seed, Path(settings.landing_root), Path(settings.truth_root), start=day, days=1)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "lakehouse.cli", "run", "--date", day.isoformat()],
                            env={"MSP_HOME": str(settings.home), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                                 "SPARK_LOCAL_IP": "127.0.0.1", "PYTHONHASHSEED": "0",
                                 "MSP_ENGINE": settings.platform.engine},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with PeakMemory(proc.pid) as mem:
        out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    stages = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("ok", "unchanged", "FAILED", "skipped") and parts[2].endswith("s"):
            with contextlib.suppress(ValueError):
                stages[parts[0]] = float(parts[2].rstrip("s"))
    t1 = time.perf_counter()
    _msp(settings, "run", "--date", day.isoformat())
    return DayTiming(day.isoformat(), sum(report.rows.values()), round(seconds, 1), mem.peak_mb,
                     proc.returncode == 0, round(time.perf_counter() - t1, 1), stages, mem.peak_rss_mb)


def bench_scale(base: Settings, scale: str, seed: int, workdir: Path, day: bool = True) -> ScaleResult:
    from lakehouse.agents import registry
    from lakehouse.context import date_range
    from lakehouse.runner import StageObserver, run_pipeline
    from lakehouse.synth import generate
    from lakehouse.synth.scales import SCALES

    home = workdir / scale
    settings = base.with_overrides(home=str(home))
    t0 = time.perf_counter()
    report = generate(scale, seed, Path(settings.landing_root), Path(settings.truth_root))
    gen_seconds = time.perf_counter() - t0
    from lakehouse.demo import landing_dates

    first, last = landing_dates(settings)
    days = date_range(date.fromisoformat(first), date.fromisoformat(last))
    with PeakMemory() as mem:
        summary = run_pipeline(settings, days, observer=StageObserver())
        trained = run_pipeline(settings, days, kinds=["train"], observer=StageObserver())
    reg = registry()
    written = {name: c["rows_out"] for name, c in summary.counts.items()}
    # a report of a later dispatch round is named "<stage> (round N)"; its rows count once, under the first
    stage_rows = {s.name: sum(written.get(d, 0) for d in reg.outputs(reg.stages[s.name])) for s in summary.stages
                  if s.name in reg.stages}
    result = ScaleResult(
        scale=scale, engine=settings.platform.engine, generate_seconds=round(gen_seconds, 2),
        raw_rows=sum(report.rows.values()), run_seconds=summary.seconds, train_seconds=trained.seconds,
        peak_mb=mem.peak_mb, peak_rss_mb=mem.peak_rss_mb, ok=summary.ok and trained.ok,
        stages=[StageTiming(s.name, s.seconds, stage_rows.get(s.name, 0),
                            round(stage_rows.get(s.name, 0) / s.seconds, 1) if s.seconds else 0.0)
                for s in summary.stages + trained.stages])
    next_day = date.fromisoformat(last) + timedelta(days=1)
    if day and next_day <= SCALES[scale].horizon_end:
        result.day = bench_day(settings, scale, seed, next_day)
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
             "| scale | engine | raw rows | generate s | backfill s | rows/s | training s | peak MB (PSS) | "
             "RSS sum MB |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rps = r.raw_rows / r.run_seconds if r.run_seconds else 0
        lines.append(f"| {r.scale} | {r.engine} | {r.raw_rows:,} | {r.generate_seconds:.1f} | {r.run_seconds:.1f} | "
                     f"{rps:,.0f} | {r.train_seconds:.1f} | {r.peak_mb:,.0f} | {r.peak_rss_mb:,.0f} |")
    days = [r for r in results if r.day]
    if days:
        lines += ["", "## One new export day on a lake holding the window (`msp run --date D`, a new process)", "",
                  "| scale | day | new rows | wall s | peak MB | rerun with nothing new s |",
                  "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r.scale} | {r.day.day} | {r.day.new_rows:,} | {r.day.seconds:.1f} | {r.day.peak_mb:,.0f} | "
                  f"{r.day.rerun_seconds:.1f} |" for r in days]
        for r in days:
            lines += ["", f"Stages of the day at scale {r.scale}: " +
                      ", ".join(f"{k} {v:.1f} s" for k, v in r.day.stages.items())]
    for r in results:
        lines += ["", f"## Backfill stages at scale {r.scale}", "", "| stage | seconds | rows out | rows/s |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {s.name} | {s.seconds:.1f} | {s.rows_out:,} | {s.rows_per_second:,.0f} |" for s in r.stages]
    g = growth(results)
    if g:
        lines += ["", "## Growth between scales", "", "| from → to | rows × | time × | time per row × |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {x['from']} → {x['to']} | {x['rows_factor']} | {x['time_factor']} | "
                  f"{x['time_per_row_factor']} |" for x in g]
    return "\n".join(lines) + "\n"


def run_bench(settings: Settings, scales: list[str], seed: int, out: Path, workdir: Path, console,
              day: bool = True) -> Path:
    results = []
    for scale in scales:
        console.rule(f"Benchmark at scale {scale}")
        r = bench_scale(settings, scale, seed, workdir, day=day)
        console.print(f"  generated {r.raw_rows:,} rows in {r.generate_seconds:.1f}s; backfill {r.run_seconds:.1f}s; "
                      f"training {r.train_seconds:.1f}s; peak {r.peak_mb:,.0f} MB"
                      + (f"; one new day {r.day.seconds:.1f}s" if r.day else ""))
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
    run_bench(settings, scales, args.seed, Path(args.out), workdir, console, day=not args.no_day)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark the pipeline at one or more scales, and one new day")
    p.add_argument("--scale", default="tiny,small", help="comma-separated scales, smallest first (default tiny,small)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="bench-results", help="folder for the JSON and Markdown reports")
    p.add_argument("--workdir", help="where to generate and run (default: a new temp folder)")
    p.add_argument("--no-day", action="store_true", help="skip the one-new-day scenario")
    p.set_defaults(func=cmd_bench)
