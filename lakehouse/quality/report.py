"""Quality results kept in the lake as JSON (what ``msp quality`` prints); the pages people open are
Great Expectations' Data Docs (:mod:`lakehouse.quality.gx`).

Layout under the lake root::

    _meta/quality/latest/<dataset>.json          the newest result of each dataset (`msp quality`)
    _meta/quality/runs/<run id>/<dataset>.json   every result: counts, rules, samples, checks, drift, audit
    _meta/quality/state/<dataset>.json           what each dataset was last gated from (skip unchanged)
    _meta/quality/gx/                            the GX Data Context (suites, validation definitions, checkpoints)
    _meta/quality/data_docs/index.html           GX Data Docs
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.lake import Lake

ROOT = "_meta/quality"
STATUS_ORDER = ("failed", "warned", "passed", "unchanged", "no_data")


@dataclass
class DatasetResult:
    """What the gate found for one dataset in one run (serialised as the result JSON)."""

    dataset: str
    run_id: str
    dates: list[str]
    status: str = "passed"  # passed | warned (published, with refused rows or warnings) | failed | no_data
    published: bool = False  # processed and quarantine were written (never for a failed dataset)
    counts: dict[str, Any] = field(default_factory=dict)
    per_day: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    drift: list[dict[str, Any]] = field(default_factory=list)
    rejected_files: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: errors that fail the stage although the dataset's other files were published (a file whose key
    #: column was renamed upstream, with ``fail_on_drift``)
    stop: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the Great Expectations Checkpoint that audited the published batch
    audit: dict[str, Any] = field(default_factory=dict)
    suite: str | None = None
    engine: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    generated_at: str = ""

    def fail(self, message: str) -> None:
        self.status = "failed"
        self.errors.append(message)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False, default=str)


def result_path(dataset: str, run_id: str) -> str:
    return f"{ROOT}/runs/{run_id}/{dataset}.json"


def latest_path(dataset: str) -> str:
    return f"{ROOT}/latest/{dataset}.json"


def state_path(dataset: str) -> str:
    return f"{ROOT}/state/{dataset}.json"


def save(lake: Lake, result: DatasetResult) -> str:
    """Write the result JSON and the dataset's latest copy; returns the result's path."""
    text = result.to_json()
    lake.write_text(latest_path(result.dataset), text)
    return lake.write_text(result_path(result.dataset, result.run_id), text)


def latest(lake: Lake) -> list[dict[str, Any]]:
    """The newest result of every dataset that has one."""
    out = []
    for rel in lake.list_files(f"{ROOT}/latest"):
        if rel.endswith(".json"):
            text = lake.read_text(rel)
            if text:
                out.append(json.loads(text))
    return sorted(out, key=lambda r: r["dataset"])


def data_docs_index(lake: Lake) -> str:
    """Where the Data Docs entry page is (a local path, or a URI for a remote lake)."""
    from lakehouse.quality.gx import DOCS_DIR

    return lake._small_path(f"{DOCS_DIR}/index.html") if lake.local else lake.path(f"{DOCS_DIR}/index.html")
