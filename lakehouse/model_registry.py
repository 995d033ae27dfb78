"""A small model registry in the lake, shared by every agent's models.

Layout (``ml-models`` zone; the same on a local folder and on S3)::

    ml-models/<model>/<version>/model.joblib          the fitted estimator (joblib)
                               /metrics.json          test metrics of the model and of its baseline
                               /params.json           hyper-parameters and training settings
                               /features.json         feature names, in order, with their kinds
                               /training_data.parquet the exact rows it was trained and tested on
                               /model_card.md         what it is, how it was evaluated, its limits
                               /version.json          everything above in one small record
    ml-models/<model>/CURRENT.json                    the promoted version (one atomic write)
    ml-models/<model>/history.json                    every promotion decision, newest last

A version id is derived from the training cut-off and a hash of what was trained (data, parameters,
features), so retraining the same data on the same day writes the same version instead of a new one.
:meth:`ModelRegistry.promote_if_better` promotes a new version only when it beats the current one on the
model's primary metric, ideally measured on the *same* test rows (the caller re-scores the champion on the
challenger's test set and passes that score), so that a lucky split cannot replace a better model.

Artifacts are pickles: load them only from a lake you trust (your own).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from lakehouse.lake import Lake

ZONE = "ml-models"
CURRENT = "CURRENT.json"
HISTORY = "history.json"


class RegistryError(LookupError):
    """A model or version is missing; the message says which and where it was looked for."""


def make_version(as_of: date, *parts: Any) -> str:
    """``YYYYMMDD-<hash8>``: the training cut-off day and a hash of what was trained."""
    digest = hashlib.sha256()
    for p in parts:
        if hasattr(p, "to_parquet"):
            import pandas as pd

            digest.update(pd.util.hash_pandas_object(p, index=False).to_numpy().tobytes())
            digest.update(",".join(map(str, p.columns)).encode())
        else:
            digest.update(json.dumps(p, sort_keys=True, default=str).encode())
    return f"{as_of:%Y%m%d}-{digest.hexdigest()[:8]}"


@dataclass
class ModelVersion:
    model: str
    version: str
    primary_metric: str
    metrics: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    higher_is_better: bool = True
    created_at: str = ""
    training_rows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float | None:
        value = self.metrics.get(self.primary_metric)
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


@dataclass(frozen=True)
class Decision:
    """Whether a version was promoted, and why (written to history.json and shown by the CLI)."""

    model: str
    version: str
    promoted: bool
    reason: str
    challenger: float | None
    champion: float | None
    champion_version: str | None
    decided_at: str


class ModelRegistry:
    """The versions of one model in the lake (``ml-models/<name>/``)."""

    def __init__(self, lake: Lake, name: str):
        if not name or "/" in name:
            raise ValueError(f"model name must be a single folder name, got {name!r}")
        self.lake = lake
        self.name = name

    # ---- paths ----------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        """Relative lake path under ``ml-models/<name>/``."""
        return "/".join((ZONE, self.name, *parts))

    def uri(self, *parts: str) -> str:
        return f"{self.lake.root}/{self.path(*parts)}"

    # ---- writing --------------------------------------------------------------------------------
    def save(self, model: Any, *, version: str, metrics: Mapping[str, Any], primary_metric: str,
             params: Mapping[str, Any] | None = None, features: Sequence[str] = (),
             feature_kinds: Mapping[str, str] | None = None, training_data: pd.DataFrame | None = None,
             higher_is_better: bool = True, card: Mapping[str, Any] | None = None,
             extra: Mapping[str, Any] | None = None) -> ModelVersion:
        """Store a trained model and everything needed to trust it; returns the version record.

        ``card`` adds sections to the model card: ``{"intended_use": ..., "data": ..., "baseline": ...,
        "importance": ..., "limitations": ...}`` (markdown text each)."""
        import joblib

        if primary_metric not in metrics:
            raise ValueError(f"primary metric {primary_metric!r} is not among the metrics {sorted(metrics)}")
        buf = io.BytesIO()
        joblib.dump(model, buf, compress=3)
        mv = ModelVersion(self.name, version, primary_metric, _jsonable(dict(metrics)), _jsonable(dict(params or {})),
                          list(features), higher_is_better, datetime.now(UTC).isoformat(timespec="seconds"),
                          0 if training_data is None else len(training_data), _jsonable(dict(extra or {})))
        self.lake.write_bytes(self.path(version, "model.joblib"), buf.getvalue())
        if training_data is not None:
            out = io.BytesIO()
            training_data.to_parquet(out, index=False)
            self.lake.write_bytes(self.path(version, "training_data.parquet"), out.getvalue())
        self._write_json(self.path(version, "metrics.json"), mv.metrics)
        self._write_json(self.path(version, "params.json"), mv.params)
        self._write_json(self.path(version, "features.json"),
                         [{"name": f, "kind": (feature_kinds or {}).get(f, "")} for f in mv.features])
        self.lake.write_text(self.path(version, "model_card.md"), model_card(mv, card or {}))
        self._write_json(self.path(version, "version.json"), asdict(mv))
        return mv

    def _write_json(self, relative: str, payload: Any) -> None:
        self.lake.write_text(relative, json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n")

    def _read_json(self, relative: str) -> Any:
        text = self.lake.read_text(relative)
        return None if text is None else json.loads(text)

    # ---- reading --------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Stored versions, oldest first."""
        files = self.lake.list_files(self.path())
        prefix = self.path() + "/"
        found = {f[len(prefix):].split("/", 1)[0] for f in files
                 if f.startswith(prefix) and f.endswith("/version.json")}
        return sorted(found)

    def get(self, version: str) -> ModelVersion:
        doc = self._read_json(self.path(version, "version.json"))
        if doc is None:
            raise RegistryError(f"model {self.name!r} has no version {version!r} under {self.uri()}")
        return ModelVersion(**doc)

    def current(self) -> ModelVersion | None:
        """The promoted version, or None before the first promotion."""
        ptr = self._read_json(self.path(CURRENT))
        return None if ptr is None else self.get(ptr["version"])

    def load(self, version: str | None = None) -> Any:
        """The fitted model of ``version`` (default: the current one)."""
        import joblib

        if version is None:
            cur = self.current()
            if cur is None:
                raise RegistryError(f"model {self.name!r} has no promoted version yet under {self.uri()} "
                                    "(run its training stage first)")
            version = cur.version
        data = self.lake.read_bytes(self.path(version, "model.joblib"))
        if data is None:
            raise RegistryError(f"model {self.name!r} version {version!r} has no model.joblib under {self.uri()}")
        return joblib.load(io.BytesIO(data))

    def training_data(self, version: str) -> pd.DataFrame:
        import pandas as pd

        data = self.lake.read_bytes(self.path(version, "training_data.parquet"))
        if data is None:
            raise RegistryError(f"model {self.name!r} version {version!r} has no training data snapshot")
        return pd.read_parquet(io.BytesIO(data))

    def history(self) -> list[dict[str, Any]]:
        return self._read_json(self.path(HISTORY)) or []

    # ---- promotion ------------------------------------------------------------------------------
    def promote(self, version: str, reason: str = "promoted by hand") -> Decision:
        mv = self.get(version)
        cur = self.current()
        decision = Decision(self.name, version, True, reason, mv.score, cur.score if cur else None,
                            cur.version if cur else None, datetime.now(UTC).isoformat(timespec="seconds"))
        self._record(decision)
        return decision

    def promote_if_better(self, version: str, champion_score: float | None = None,
                          min_improvement: float = 0.0) -> Decision:
        """Promote ``version`` when it beats the current version on the primary metric by more than
        ``min_improvement``. ``champion_score`` is the current model's score on the new version's test rows
        (fair comparison); without it, the current version's own stored score is used."""
        mv = self.get(version)
        cur = self.current()
        now = datetime.now(UTC).isoformat(timespec="seconds")
        challenger = mv.score
        if cur is not None and cur.version == version:
            decision = Decision(self.name, version, False, "already the current version", challenger, challenger,
                                version, now)
            self._record(decision, switch=False)
            return decision
        if cur is None:
            ok, champion, why = challenger is not None, None, "first version with a score"
        else:
            champion = champion_score if champion_score is not None else cur.score
            basis = "on the same test rows" if champion_score is not None else "on their own test sets"
            if challenger is None:
                ok, why = False, f"no {mv.primary_metric} for the new version"
            elif champion is None:
                ok, why = True, f"the current version has no {mv.primary_metric}"
            else:
                delta = challenger - champion if mv.higher_is_better else champion - challenger
                ok = delta > min_improvement
                why = (f"{mv.primary_metric} {challenger:.4f} vs {champion:.4f} {basis}: "
                       f"{'better' if ok else 'not better'}")
        if challenger is None and cur is None:
            why = f"no {mv.primary_metric} to judge the version by"
        decision = Decision(self.name, version, ok, why, challenger, champion, cur.version if cur else None, now)
        self._record(decision, switch=ok)
        return decision

    def _record(self, decision: Decision, switch: bool = True) -> None:
        if switch and decision.promoted:
            self._write_json(self.path(CURRENT), {"model": self.name, "version": decision.version,
                                                  "promoted_at": decision.decided_at, "reason": decision.reason})
        history = self.history()
        history.append(asdict(decision))
        self._write_json(self.path(HISTORY), history)
        self._write_json(self.path(decision.version, "decision.json"), asdict(decision))


# ---- model card --------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def model_card(mv: ModelVersion, sections: Mapping[str, Any]) -> str:
    """A short markdown model card (after Mitchell et al., "Model Cards for Model Reporting")."""
    lines = [f"# Model card: {mv.model} {mv.version}", "",
             f"- created: {mv.created_at}", f"- primary metric: `{mv.primary_metric}` "
             f"({'higher' if mv.higher_is_better else 'lower'} is better)",
             f"- rows in the training data snapshot: {mv.training_rows:,}", ""]
    if sections.get("intended_use"):
        lines += ["## Intended use", "", str(sections["intended_use"]).strip(), ""]
    if sections.get("data"):
        lines += ["## Data and split", "", str(sections["data"]).strip(), ""]
    nested = {k: v for k, v in mv.metrics.items() if isinstance(v, Mapping)}
    flat = {k: v for k, v in mv.metrics.items() if not isinstance(v, Mapping)}
    # one column for this model (the flat metrics), one per nested set (e.g. its baseline)
    columns = {"model": flat, **nested}
    names = list(dict.fromkeys([*flat, *(m for v in nested.values() for m in v)]))
    lines += ["## Metrics (test split)", "", "| metric | " + " | ".join(columns) + " |",
              "|---|" + "---|" * len(columns)]
    lines += [f"| {m} | " + " | ".join(_fmt(v.get(m)) for v in columns.values()) + " |" for m in names]
    lines.append("")
    if sections.get("baseline"):
        lines += ["## Baseline", "", str(sections["baseline"]).strip(), ""]
    if sections.get("importance"):
        lines += ["## What the model relies on", "", str(sections["importance"]).strip(), ""]
    lines += ["## Features", "", ", ".join(f"`{f}`" for f in mv.features) or "(none)", ""]
    lines += ["## Parameters", "", "```json", json.dumps(mv.params, indent=1, sort_keys=True, default=str), "```", ""]
    if sections.get("limitations"):
        lines += ["## Limitations", "", str(sections["limitations"]).strip(), ""]
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy scalars, NaN → null, tuples → lists)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return obj
