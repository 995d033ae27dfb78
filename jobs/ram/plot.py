"""A map of one day's onsite routes (matplotlib, no basemap: longitude/latitude axes, scaled for latitude)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


def route_map(rows: pd.DataFrame, path: str | Path, title: str = "Onsite routes") -> Path:
    """Draw the stops of ``analytics.ram_routes`` rows of one solver and day: homes as squares, visits as
    numbered circles, one colour per technician, unrouted visits as grey crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(11, 7), dpi=110)
    colours = plt.get_cmap("tab10")
    routed = rows[rows["kind"] != "unrouted"]
    for n, (route, g) in enumerate(routed.sort_values(["route", "stop_seq"]).groupby("route", sort=True)):
        c = colours(n % 10)
        ax.plot(g["longitude"], g["latitude"], "-", color=c, lw=1.8, alpha=0.85,
                label=f"{route}: {int(g['visits'].iloc[0])} visit(s), {float(g['route_km'].iloc[0]):.1f} km")
        home = g[g["kind"] == "start"]
        ax.plot(home["longitude"], home["latitude"], "s", color=c, ms=10, mec="black")
        for r in g[g["kind"] == "visit"].itertuples():
            ax.plot(r.longitude, r.latitude, "o", color=c, ms=14, mec="black", alpha=0.9)
            ax.annotate(str(r.stop_seq), (r.longitude, r.latitude), ha="center", va="center", fontsize=8,
                        color="white", weight="bold")
            when = r.arrival.strftime("%H:%M") if hasattr(r.arrival, "strftime") else ""
            ax.annotate(f"{r.ticket_id} {when}", (r.longitude, r.latitude), xytext=(8, -12),
                        textcoords="offset points", fontsize=7)
    lost = rows[rows["kind"] == "unrouted"]
    if not lost.empty:
        ax.plot(lost["longitude"], lost["latitude"], "x", color="grey", ms=10, mew=2,
                label=f"unrouted: {len(lost)}")
    lat = rows["latitude"].astype(float).mean() if not rows.empty else 0.0
    ax.set_aspect(1 / max(math.cos(math.radians(lat)), 0.1), adjustable="datalim")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(title + "\nsquares: technicians' homes; circles: visits in route order (time = start of service)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
