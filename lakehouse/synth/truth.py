"""The planted truth: what the generator decided and computed, written outside the landing area.

Agents never read it; tests and evaluation reports compare the agents' findings with it. Each file is
described in the README written beside it (``TRUTH_README``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd

from lakehouse.synth.profitability import Ledger
from lakehouse.synth.psa_entities import cid
from lakehouse.synth.textfmt import NULL


class Book:
    """Collects truth while the world is simulated, and writes it."""

    def __init__(self, w, out):
        self.w = w
        self.out = out
        self.ledger = Ledger(w.tl, w.clients.n, out.last_day)
        self.tables: dict[str, pd.DataFrame] = {}
        self.anomaly_days: dict[tuple[str, int], list] = {}
        self.shortfalls: list[pd.DataFrame] = []
        self.idle: list[pd.DataFrame] = []

    # ---- accumulation hooks (called by the simulation) ------------------------------------------
    def labour(self, client, day, hours10, cost_cents) -> None:
        self.ledger.labour_rows(client, day, hours10, cost_cents)

    def billed(self, client, line_type, amount, sp_start, sp_end, issue, void_day) -> None:
        self.ledger.invoice_lines(client, line_type, amount, sp_start, sp_end, issue, void_day)

    def _inside(self, day) -> np.ndarray:
        return (day >= 0) & (day <= self.out.last_day)

    def expenses(self, day, amount, anomaly, dept) -> None:
        """Planted expense anomalies: the extra spend they caused, day by day."""
        sel = self._inside(day) & (anomaly >= 0)
        for a, d, x in zip(anomaly[sel], day[sel], amount[sel], strict=True):  # anomaly rows only (few)
            self.anomaly_days.setdefault(("expenses", int(a)), []).append((int(d), int(x)))

    def cloud(self, day, cost, normal, anomaly, dept, tagged) -> None:
        """Planted cloud anomalies: actual minus what the resource would have cost without them."""
        sel = self._inside(day) & (anomaly >= 0)
        if not sel.any():
            return
        frame = pd.DataFrame({"a": anomaly[sel], "d": day[sel], "extra": cost[sel] - np.where(
            self._new_cloud(anomaly[sel]), 0, normal[sel]), "normal": normal[sel]}).groupby(["a", "d"]).sum()
        for (a, d), r in frame.iterrows():
            self.anomaly_days.setdefault(("cloud", int(a)), []).append((int(d), int(r["extra"]), int(r["normal"])))

    def _new_cloud(self, anomaly) -> np.ndarray:
        kinds = np.asarray([a[0] for a in self.w.extra["cloud"]["anomalies"]], dtype=object)
        return kinds[anomaly] == "new_service"

    def licence_snapshots(self, client, sku, day, enabled, consumed, planted) -> None:
        sel = self._inside(day) & (consumed > enabled)
        if sel.any():
            self.shortfalls.append(pd.DataFrame({"client": client[sel], "sku": sku[sel], "day": day[sel],
                                                 "enabled": enabled[sel], "consumed": consumed[sel],
                                                 "planted": planted[sel]}))

    def idle_users(self, client, user, primary, addon, day, since, reason) -> None:
        sel = self._inside(day)
        if sel.any():
            self.idle.append(pd.DataFrame({"client": client[sel], "user": user[sel], "primary": primary[sel],
                                           "addon": addon[sel], "day": day[sel], "since": since[sel],
                                           "reason": reason[sel]}))

    # ---- output --------------------------------------------------------------------------------
    def date(self, day) -> str:
        return "" if day == NULL else self.w.tl.date_of(int(day)).isoformat()

    def write(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        w, tl = self.w, self.w.tl
        c = w.clients
        ids = cid(np.arange(c.n)).to_numpy(zero_copy_only=False)
        self.ledger.additions(w.additions)
        self.ledger.frame(ids).to_csv(root / "profitability_monthly.csv", index=False)
        from lakehouse.synth import truth_tables

        clients = truth_tables.clients(self, ids)
        clients.to_csv(root / "clients.csv", index=False)
        truth_tables.churners(self, clients).to_csv(root / "churners.csv", index=False)
        truth_tables.leads(self).to_csv(root / "leads.csv", index=False)
        truth_tables.spend_anomalies(self).to_csv(root / "spend_anomalies.csv", index=False)
        truth_tables.licence_shortfalls(self).to_csv(root / "licence_shortfalls.csv", index=False)
        truth_tables.idle_seats(self).to_csv(root / "idle_seats.csv", index=False)
        for name, frame in self.tables.items():
            frame.to_csv(root / f"{name}.csv", index=False)
        self._write_dirty(root)
        manifest = {"scale": w.scale.name, "seed": w.seed, "scale_start": tl.start.isoformat(),
                    "window_first_day": tl.date_of(self.out.first_day).isoformat(),
                    "window_last_day": tl.date_of(self.out.last_day).isoformat(),
                    "truth_covers": f"{tl.start.isoformat()}..{tl.date_of(self.out.last_day).isoformat()}",
                    "dirty_rate": self.out.dirty_rate}
        (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        from lakehouse.synth.truth_readme import TRUTH_README

        (root / "README.md").write_text(TRUTH_README)

    def _write_dirty(self, root: Path) -> None:
        """Per export day files (so daily increments add to them), and their union in dirty_rows.csv."""
        folder = root / "dirty_rows"
        folder.mkdir(exist_ok=True)
        cols = ["dataset", "file", "row_number", "kind", "column", "copy_of_row"]
        by_day: dict[str, list] = {}
        for r in self.out.dirty_rows:
            day = r.file.rsplit("_", 1)[-1].split(".")[0]
            by_day.setdefault(day, []).append(r)
        for day, rows in by_day.items():
            with (folder / f"dirty_rows_{day}.csv").open("w", newline="") as fh:
                wr = csv.writer(fh, lineterminator="\n")
                wr.writerow(cols)
                for r in sorted(rows, key=lambda r: (r.dataset, r.file, r.row_number)):
                    wr.writerow([r.dataset, r.file, r.row_number, r.kind, r.column, r.copy_of_row])
        # the union: this run's rows plus the day files earlier runs left (daily increments)
        mine = {f"dirty_rows_{d}.csv" for d in by_day}
        frames = [pd.DataFrame([[r.dataset, r.file, r.row_number, r.kind, r.column, r.copy_of_row]
                                for r in self.out.dirty_rows], columns=cols).astype(str)]
        frames += [pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(folder.glob("dirty_rows_*.csv"))
                   if p.name not in mine]
        union = pd.concat(frames, ignore_index=True)
        union["_n"] = union["row_number"].astype(int)
        union = union.sort_values(["file", "_n"], kind="stable").drop(columns="_n")
        union.to_csv(root / "dirty_rows.csv", index=False)
