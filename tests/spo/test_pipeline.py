"""SPO on the shared tiny pipeline lake (read-only): every stage ran, the tables hold what they declare and
agree with each other, the events are the table's rows, and the commands answer."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import schemas
from lakehouse.lake import Lake

pytestmark = pytest.mark.integration


def read(settings, name, where=None) -> pd.DataFrame:
    return Lake.from_settings(settings).read_pandas(schemas.get(name), where)


def test_the_spo_stages_ran(pipeline_lake):
    from lakehouse.runner import RUNS_DIR

    lake = Lake.from_settings(pipeline_lake)
    runs = [json.loads(lake.read_text(f)) for f in lake.list_files(RUNS_DIR)]
    seen = {s["name"]: s["status"] for r in runs for s in r["stages"] if s["name"].startswith("spo.")}
    assert set(seen) == {"spo.lead_train", "spo.lead_score", "spo.forecast_train", "spo.forecast", "spo.opportunities",
                         "spo.proposals"}
    assert set(seen.values()) <= {"ok", "unchanged"}
