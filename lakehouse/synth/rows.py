"""Small helpers for building change-export rows of entity tables (thousands of rows, not millions)."""

from __future__ import annotations

import numpy as np

from lakehouse.synth.rng import hash_uniform
from lakehouse.synth.textfmt import NULL
from lakehouse.synth.timeline import DAY


class Rows:
    """Column lists for change-export rows; ``emit`` keeps the last row per (key, export day)."""

    def __init__(self):
        self.cols: dict[str, list] = {}
        self.n = 0

    def add(self, **values) -> None:
        """Append rows: every value is an array (or scalar) of the same length."""
        n = max((len(v) for v in values.values() if isinstance(v, np.ndarray | list)), default=1)
        for k, v in values.items():
            arr = np.asarray(v if isinstance(v, np.ndarray | list) else [v] * n)
            if arr.dtype.kind == "U":
                arr = arr.astype(object)
            self.cols.setdefault(k, []).append(arr)
        self.n += n

    def frame(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if len(v) > 1 else v[0] for k, v in self.cols.items()}

    def emit(self, sink, key: str, day: str = "_day", order: str | None = None) -> None:
        """Send to ``sink``: export days before day 0 go to day 0 (the first, full export)."""
        if not self.cols:
            return
        f = self.frame()
        d = np.maximum(f.pop(day).astype(np.int64), 0)
        seq = np.arange(len(d))
        k = f[key]
        # last row per (key, day) wins: the state at the end of the export day
        o = np.lexsort((seq, d, k))
        last = np.ones(len(o), dtype=bool)
        last[:-1] = (k[o][1:] != k[o][:-1]) | (d[o][1:] != d[o][:-1])
        keep = np.sort(o[last])
        f = {name: v[keep] for name, v in f.items()}
        ordering = f.pop(order) if order else None
        sink.add(d[keep], ordering, **{n: v for n, v in f.items() if not n.startswith("_")})


def clock(seed: int, name: str, day: np.ndarray, salt: np.ndarray | int = 0, lo: int = 14, hi: int = 23) -> np.ndarray:
    """A business-hours time (UTC hour lo..hi) on ``day``, as seconds: deterministic per (name, day, salt)."""
    day = np.asarray(day, dtype=np.int64)
    u = hash_uniform(seed, name, day, salt)
    secs = day * DAY + lo * 3600 + (u * (hi - lo) * 3600).astype(np.int64)
    return np.where(day == NULL, NULL, secs)
