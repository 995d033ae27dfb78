"""A picture of one anomaly: the segment's daily spend, the detector's expectation and interval, the flagged
days and the anomaly's span (matplotlib, written as PNG; used by ``msp dsa plot`` and docs/dsa.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.config import Settings


def plot_anomaly(settings: Settings, anomaly: str, out: Path, days: int = 120) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    import schemas
    from jobs.dsa.cli import latest_anomalies
    from lakehouse.lake import Lake, Range

    lake = Lake.from_settings(settings)
    cur = latest_anomalies(lake.read_pandas(schemas.get("analytics.spend_anomalies")))
    hit = cur[cur["anomaly_id"].str.startswith(anomaly)] if not cur.empty else cur
    if hit.empty:
        raise LookupError(f"no anomaly {anomaly!r} in analytics.spend_anomalies")
    a = hit.iloc[0]
    start, end = a["start_date"], a["end_date"] if pd.notna(a["end_date"]) else a["last_detected"]
    lo = start - timedelta(days=days // 2)
    hi = end + timedelta(days=max(14, days // 4))
    s = lake.read_pandas(schemas.get("analytics.spend_anomaly_scores"), {"dt": Range(lo.isoformat(), hi.isoformat())})
    s = s[(s["source"] == a["source"]) & (s["dimension"] == a["dimension"]) & (s["segment"] == a["segment"])
          & (s["method"] == a["method"])].copy()
    s["day"] = pd.to_datetime(s["dt"])
    s = s.sort_values("day")
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=120)
    ax.axvspan(pd.Timestamp(start) - pd.Timedelta(hours=12), pd.Timestamp(end) + pd.Timedelta(hours=12),
               color="#f4c7c3", alpha=0.6, label="anomaly (start to end)")
    ax.fill_between(s["day"], s["lower"].fillna(0), s["upper"], color="#c6dbef", alpha=0.8,
                    label=f"prediction interval ({settings.model('dsa').level:g} %)", step="mid")
    ax.plot(s["day"], s["expected"], color="#2171b5", lw=1.2, label="expected")
    ax.plot(s["day"], s["actual"], color="#222222", lw=1.0, marker=".", ms=3, label="actual")
    f = s[s["flagged"]]
    ax.scatter(f["day"], f["actual"], color="#cb181d", s=18, zorder=5, label="flagged day")
    def short(text, n=48):
        text = str(text or "")
        return text if len(text) <= n else "..." + text[-(n - 3):]

    pct = f" ({a['impact_pct']:,.0f} %)" if pd.notna(a["impact_pct"]) else ""
    ax.set_title(f"{a['source']} {a['dimension']} {short(a['segment'])}: {a['kind'].replace('_', ' ')} from "
                 f"{start} to {end}\nimpact {a['total_impact']:,.2f} USD{pct}, top root cause "
                 f"{short(a['top_root_cause'])}", fontsize=9)
    ax.set_ylabel("daily spend (USD)")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
