"""The lead scorer: snapshots see only what was exported by their day (no leakage), the label and its
completeness, the time split's embargo, the model against its baseline on the same rows, priority tiers, and
the bring-your-own-CSV spec on a differently shaped lead export."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.spo import leads as M
from tests.spo.conftest import frame


def lead(dt: str, status: str, **kw):
    base = {"lead_id": "LD-000001", "company_name": "Acme Dental", "industry": "healthcare", "employees": 12,
            "endpoints": 14, "locations": 1, "compliance_needs": "HIPAA", "current_it_model": "break_fix",
            "lead_source": "referral", "referred_by_client_id": "CL-00003", "owner": "Ann Rep", "status": status,
            "email_opens": 0, "email_clicks": 0, "web_visits": 0, "form_submissions": 0, "calls": 0, "meetings": 0,
            "assessment_done": False, "created_at": "2024-01-01T10:00:00", "updated_at": f"{dt}T22:00:00", "dt": dt}
    return {**base, **kw}


def activity(day: str, direction="outbound", n=1):
    return {"activity_id": f"AC-{day}-{n}", "activity_type": "email", "direction": direction, "lead_id": "LD-000001",
            "owner": "Ann Rep", "occurred_at": f"{day}T15:00:00", "subject": "Hello",
            "outcome": "replied" if direction == "inbound" else "sent", "opened": True, "clicked": False, "dt": day}


@pytest.fixture
def history():
    leads = frame("processed.leads", [
        lead("2024-01-01", "new"),
        lead("2024-01-20", "qualified", meetings=3, web_visits=9, last_engagement_at="2024-01-19T12:00:00"),
        lead("2024-03-15", "converted", meetings=4, converted_at="2024-03-15T21:00:00"),
    ])
    acts = frame("processed.activities", [activity("2024-01-05"), activity("2024-01-25", "inbound")])
    return leads, acts


def test_a_snapshot_sees_only_what_was_exported_by_its_day(history):
    leads, acts = history
    s = M.snapshots(leads, acts, [date(2024, 1, 10), date(2024, 1, 21), date(2024, 1, 26), date(2024, 3, 16)], 180)
    s = s.set_index("day")
    jan10, jan21, jan26 = (s.loc[pd.Timestamp(d)] for d in ("2024-01-10", "2024-01-21", "2024-01-26"))
    assert (jan10["status"], jan10["meetings"], jan10["emails_out"], jan10["replies"]) == ("new", 0, 1, 0)
    assert (jan21["status"], jan21["meetings"], jan21["emails_out"], jan21["replies"]) == ("qualified", 3, 1, 0)
    assert (jan26["emails_out"], jan26["replies"]) == (1, 1)
    assert jan10["age_days"] == 9
    # converted on March 15: not an open lead any more, not scored
    assert pd.Timestamp("2024-03-16") not in s.index
    f = M.features(s.reset_index())
    assert f.loc[0, "days_since_activity"] == 5 and np.isnan(f.loc[0, "days_since_reply"])
    assert f.loc[2, "days_since_reply"] == 1 and f.loc[0, "referred"] == 1


def test_what_reps_fill_in_after_contact_is_not_a_feature(history):
    for left_out in ("status", "assessment_done", "owner", "converted_at", "opportunity_id", "stage"):
        assert left_out not in M.FEATURES
        assert left_out not in M.TREE_FEATURES and left_out not in M.BASELINE_FEATURES


def test_the_label_looks_ahead_the_horizon_and_is_complete_only_when_it_has_passed(history):
    leads, acts = history
    s = M.snapshots(leads, acts, [date(2023, 12, 31), date(2024, 1, 10), date(2024, 1, 21)], 180)
    labelled = M.add_labels(s, leads, 90, date(2024, 4, 15))
    by_day = labelled.set_index("day")
    # converted March 15: within 90 days of Jan 10 and Jan 21
    assert by_day["label"].tolist() == [1, 1]
    # Jan 10 + 90 = Apr 9 <= Apr 15: complete; Jan 21 + 90 = Apr 20 > Apr 15: not yet (even though positive)
    assert by_day["label_complete"].tolist() == [True, False]
    # the outcome is read from what was exported by the cut-off: before March 15 nobody knew
    early = M.add_labels(s, leads, 90, date(2024, 3, 1)).set_index("day")
    assert early["label"].tolist() == [0, 0]


def synthetic_snapshots(n_leads=250, seed=3) -> pd.DataFrame:
    """Weekly snapshots of made-up leads whose conversion depends on their fields and on engagement."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2024-01-01")
    for i in range(n_leads):
        created = start + pd.Timedelta(days=int(rng.integers(0, 600)))
        source = rng.choice(["referral", "website", "event", "cold_outreach"])
        model = rng.choice(["break_fix", "in_house", "other_msp", "none"])
        employees = int(np.clip(rng.lognormal(3, 0.7), 3, 500))
        interest = rng.normal(0, 1)
        z = -2 + 1.1 * (source == "referral") + 0.6 * (model == "break_fix") + 0.3 * np.log(employees / 20) + interest
        converts = rng.random() < 1 / (1 + np.exp(-z))
        conv_day = created + pd.Timedelta(days=int(rng.integers(40, 80))) if converts else None
        for week in range(16):
            day = created + pd.Timedelta(days=7 * week)
            if conv_day is not None and day >= conv_day:
                break
            age = 7 * week
            rows.append({"lead_id": f"LD-{i:06d}", "day": day, "industry": "retail", "employees": employees,
                         "endpoints": employees, "locations": 1, "compliance_needs": "none", "current_it_model": model,
                         "lead_source": source, "referred_by_client_id": None, "status": "working",
                         "email_opens": rng.poisson(max(0.1, (1 + interest) * age / 14)), "email_clicks": 0,
                         "web_visits": rng.poisson(max(0.1, (2 + interest) * age / 10)), "form_submissions": 0,
                         "calls": 0, "meetings": int(interest > 0.8 and age > 14), "emails_out": week,
                         "emails_opened": 0, "emails_clicked": 0, "replies": int(interest > 0.5 and age > 7),
                         "calls_made": 0, "calls_connected": 0, "meetings_booked": 0, "age_days": age,
                         "last_engagement_at": None, "last_touch": day - pd.Timedelta(days=2), "last_replies": None,
                         "label": int(conv_day is not None and day < conv_day <= day + pd.Timedelta(days=90))})
    out = pd.DataFrame(rows)
    out["label_complete"] = out["day"] + pd.Timedelta(days=90) <= pd.Timestamp("2026-01-01")
    return out


@pytest.fixture(scope="module")
def trained():
    params = {"max_iter": 100, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 40, "l2_regularization": 1.0}
    return M.train(synthetic_snapshots(), test_share=0.34, horizon_days=90, min_train_positives=10, params=params,
                   calibration="sigmoid", folds=3, random_state=7, baseline_c=1.0)


def test_time_split_keeps_an_embargo_of_one_horizon(trained):
    split = trained.split
    assert pd.Timestamp(split["train_to"]) + pd.Timedelta(days=90) < pd.Timestamp(split["test_from"])
    assert trained.train["day"].max() + pd.Timedelta(days=90) < trained.test["day"].min()
    assert not set(trained.train.index) & set(trained.test.index)


def test_model_and_baseline_are_measured_on_the_same_rows(trained):
    m, b = trained.metrics, trained.metrics["baseline"]
    for k in ("roc_auc", "pr_auc", "brier", "ece", "lift_top_decile"):
        assert m[k] is not None and b[k] is not None
    assert m["rows"] == b["rows"] == len(trained.test)
    # engagement carries signal the lead fields cannot see: the learned model must beat its baseline
    assert m["roc_auc"] > b["roc_auc"] and m["pr_auc"] > b["pr_auc"] and m["brier"] < b["brier"]
    assert trained.test["probability"].min() >= 0 and trained.test["probability"].max() < 1


def test_priority_tiers_are_quartiles_of_the_reference_scores(trained):
    scorer = trained.scorer
    hi, mid, lo = scorer.tier_cuts
    assert hi >= mid >= lo
    assert scorer.tier([hi, (hi + mid) / 2, (mid + lo) / 2, lo / 2]).tolist() == list(M.TIER_NAMES)
    ref, _ = scorer.predict(M.features(trained.train))
    share = pd.Series(scorer.tier(ref)).value_counts(normalize=True)
    assert all(abs(share[t] - 0.25) < 0.05 for t in M.TIER_NAMES)


def test_scoring_is_deterministic_and_ignores_rep_fields(trained):
    test = trained.test.head(50)
    a = M.score(trained.scorer, test)["probability"]
    b = M.score(trained.scorer, test.assign(status="qualified", owner="Someone Else"))["probability"]
    assert a.tolist() == b.tolist()


def test_not_enough_conversions_says_so():
    snaps = synthetic_snapshots(40, seed=1)
    snaps["label"] = 0
    with pytest.raises(M.NotEnoughData, match="conversion snapshot"):
        M.train(snaps, test_share=0.34, horizon_days=90, min_train_positives=10, params={}, calibration="sigmoid",
                folds=3, random_state=0, baseline_c=1.0)


# ---- a user's own export ----------------------------------------------------------------------------------
def hubspot_like_export(n=700, seed=11) -> pd.DataFrame:
    """A CRM export shaped nothing like our tables: other column names, text categories in other spellings,
    blanks and placeholders, numbers as text, a Yes/No label."""
    rng = np.random.default_rng(seed)
    source = rng.choice(["Referral", "Web form", "Trade Show", "Cold call", "PPC", "N/A", "", " unknown "], n)
    it = rng.choice(["Break/Fix", "In-house IT", "Another MSP", "None", "?"], n)
    emp = np.round(rng.lognormal(3, 0.8, n))
    interest = rng.normal(0, 1, n)
    z = (-1.8 + 1.2 * (source == "Referral") + 0.4 * np.log(emp / 20) + 0.6 * np.isin(it, ["Break/Fix", "Another MSP"])
         + 1.2 * interest)
    y = rng.random(n) < 1 / (1 + np.exp(-z))
    visits = rng.poisson(np.exp(1 + 0.7 * interest))
    meetings = rng.poisson(np.exp(-1 + 0.9 * interest))
    return pd.DataFrame({
        "Record ID": [f"HS{i:05d}" for i in range(n)],
        "Company Size": [f"{int(e):,} staff" if i % 9 else "" for i, e in enumerate(emp)],
        "Original Source": source, "IT Today": it,
        "Compliance": rng.choice(["HIPAA", "PCI, HIPAA", "None", "N/A", "SOC 2"], n),
        "Website Visits": visits.astype(str), "Number of Meetings": np.where(rng.random(n) < 0.05, "-", meetings),
        "Region": rng.choice(["west", "east", None], n),
        "Create Date": pd.date_range("2024-01-01", periods=n, freq="D").strftime("%m/%d/%Y"),
        "Became a Customer": np.where(y, "Yes", "No")})


def test_the_spec_reads_a_differently_shaped_lead_export():
    from lakehouse.ml.evaluate import evaluate_frame
    from models.spo.lead_export import column_map, normalise

    export = hubspot_like_export()
    mapping = column_map(export.columns)
    assert mapping == {"Company Size": "employees", "Original Source": "lead_source", "IT Today": "current_it_model",
                       "Compliance": "compliance_needs", "Website Visits": "web_visits",
                       "Number of Meetings": "meetings"}
    norm, _ = normalise(export)
    assert set(norm["lead_source"].dropna()) == {"referral", "website", "event", "cold_outreach", "paid_search"}
    assert set(norm["current_it_model"].dropna()) == {"break_fix", "in_house", "other_msp", "none"}
    assert norm["employees"].isna().sum() == len(export) // 9 + 1 and norm["employees"].dropna().min() >= 1
    assert set(norm["compliance_needs"].dropna()) == {"hipaa", "hipaa|pci_dss", "none", "soc2"}  # "PCI, HIPAA" too
    params = M.spec_params(type("S", (), {"lead_model_params": {"max_iter": 150, "learning_rate": 0.05,
                                                               "max_depth": 3, "min_samples_leaf": 40},
                                          "lead_calibration": "sigmoid", "lead_calibration_folds": 3,
                                          "lead_random_state": 7, "lead_baseline_c": 1.0, "lead_test_share": 0.3,
                                          "lead_horizon_days": 0})())
    ev = evaluate_frame(M.SPEC, export, "Became a Customer", "Create Date", params)
    assert ev.baseline == ("logistic regression on the lead fields found (compliance_needs, current_it_model, "
                           "employees, lead_source)")
    assert "Record ID" not in ev.features  # an identifier, left out by the evaluation
    model, base = ev.metrics["model"], ev.metrics["baseline"]
    assert model["rows"] == base["rows"] == round(len(export) * 0.3)
    # engagement (visits, meetings) says what the fields cannot: the model ranks the test rows better
    assert model["roc_auc"] > 0.7 and model["roc_auc"] > base["roc_auc"]
    assert model["ece"] is not None and model["ece"] < 0.1
    # and it scores rows with unseen categories, a missing column and blanks
    fitted = M.fit_export_model(export.assign(**{"Became a Customer": (export["Became a Customer"] == "Yes")
                                                 .astype(int)}), "Became a Customer", ev.features, params)
    odd = export.drop(columns=["Website Visits"]).head(5).assign(**{"Original Source": "Podcast", "IT Today": ""})
    assert np.isfinite(fitted.predict_proba(odd)).all()
