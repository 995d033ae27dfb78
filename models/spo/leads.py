"""Lead scoring: the probability that a lead becomes a client within the horizon (HubSpot's "likelihood to
close": P(contact becomes a customer within 90 days) [DOMAIN.md section 2, R31]), calibrated, with a
priority tier per quartile (HubSpot's "contact priority").

**Snapshots.** A lead is scored on a day *d* while it is open (status new, working, qualified or nurture as
exported on or before *d*, created at most ``max_age_days`` before *d*). Its features are what was known on
*d*, and only that:

* the lead's fields: industry, employees, endpoints, locations, compliance needs (and how many regimes),
  current IT model, lead source (and whether a client referred it);
* its engagement counters as last exported on or before *d* (e-mail opens and clicks, web visits, forms,
  calls, meetings) and their rates per week of the lead's age;
* its sales activities up to *d* (``processed.activities``): outbound e-mails and how many were opened or
  clicked, replies (inbound e-mails), calls and connected calls, meetings booked, days since the last
  activity, the last reply, the last recorded engagement; the lead's age in days.

Left out on purpose: everything a sales rep fills in after contact or that encodes the outcome (status,
assessment done, owner, converted_at, the opportunity and its stage): a score must not learn that
"qualified" leads convert, it must say which leads to qualify.

**Label.** The lead converts (``converted_at`` of its latest export) within ``horizon_days`` after *d*. A
snapshot's label is *complete* when *d* + horizon has passed by the training cut-off, or it converted.

**Split, baseline, model.** Snapshot days are ordered; the latest ``test_share`` of them are the test set,
and training uses only snapshots whose label window closed before the first test day (an embargo of one
horizon). The named baseline is a logistic regression on the lead fields alone (:class:`FieldsBaseline`).
The learned model is gradient-boosted trees (scikit-learn ``HistGradientBoostingClassifier``) on the
engagement, activity and timing features plus the baseline's log-odds (stacked, with a monotone-increasing
constraint): the lead's fields reach the trees only through the baseline's smooth linear fit, so a lead with
no engagement yet is ranked as the baseline ranks it, and the trees add what engagement says. (Giving the
trees the raw fields as well fits the test months' outcomes about as well but ranks new leads worse against
the planted conversion probability: the trees split on noise in 200 leads.) The log-odds of the training
rows come from baselines fitted without their lead (cross-fitting). The probabilities are calibrated by
``CalibratedClassifierCV`` (sigmoid) on out-of-fold scores whose folds keep each lead's snapshots together
(``GroupKFold``): snapshots of one lead are near copies, and a fold that splits them calibrates on rows the
trees have memorised. Both are measured on the same test rows: ROC-AUC, PR-AUC, Brier, expected calibration
error and lift in the top decile (:func:`lakehouse.ml.metrics.binary_metrics`).

Nothing here reads or writes the lake and nothing imports ``jobs/``: settings arrive as parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.ml import ModelSpec
from models.spo import history as H

#: Lead statuses of an open lead: it is scored. Converted and disqualified leads are not.
OPEN_STATUSES = ("new", "working", "qualified", "nurture")
CATEGORICAL_FIELDS = ("industry", "compliance_needs", "current_it_model", "lead_source")
NUMERIC_FIELDS = ("employees", "endpoints", "locations")
#: What the baseline sees: the lead's own fields, transformed for a linear model.
BASELINE_FEATURES = (*CATEGORICAL_FIELDS, "log_employees", "log_endpoints", "locations", "compliance_count",
                     "referred")
ENGAGEMENT = ("email_opens", "email_clicks", "web_visits", "form_submissions", "calls", "meetings")
ACTIVITY = ("emails_out", "emails_opened", "emails_clicked", "replies", "calls_made", "calls_connected",
            "meetings_booked")
RATES = ("web_visits_per_week", "forms_per_week", "meetings_per_week", "touches_per_week", "open_rate")
TIMING = ("age_days", "days_since_engagement", "days_since_activity", "days_since_reply")
#: Every feature column of a snapshot (:func:`features`).
FEATURES = (*CATEGORICAL_FIELDS, *NUMERIC_FIELDS, "compliance_count", "referred", *ENGAGEMENT, *ACTIVITY,
            *RATES, *TIMING)
#: The baseline's log-odds, stacked into the trees: the lead fields reach the trees only through it.
STACKED = "baseline_logit"
#: What the trees see: engagement, activity, rates and timing, and the baseline's log-odds (monotone).
TREE_FEATURES = (*ENGAGEMENT, *ACTIVITY, *RATES, *TIMING, STACKED)
KEYS = ("lead_id", "day")
MODEL_NAME = "lead-score"
BASELINE_NAME = "logistic regression on the lead fields (industry, size, locations, compliance, IT model, source)"
TIER_NAMES = ("very_high", "high", "medium", "low")


class NotEnoughData(ValueError):
    """Too few labelled snapshots or conversions to train and test honestly; the message says what."""


# ---- snapshots --------------------------------------------------------------------------------------------
def _activity_flags(activities: pd.DataFrame) -> pd.DataFrame:
    a = activities
    email, call = a["activity_type"] == "email", a["activity_type"] == "call"
    out_ = a["direction"] == "outbound"

    def flag(col):
        return a[col].map(lambda v: bool(v) if v is not None and not pd.isna(v) else False).astype(bool)

    return pd.DataFrame({
        "lead_id": a["lead_id"], "_day": H.day(a["dt"] if "dt" in a else a["occurred_at"]),
        "emails_out": (email & out_).astype(int),
        "emails_opened": (email & out_ & flag("opened")).astype(int),
        "emails_clicked": (email & out_ & flag("clicked")).astype(int),
        "replies": (a["direction"] == "inbound").astype(int),
        "calls_made": call.astype(int),
        "calls_connected": (call & a["outcome"].isin(["connected", "meeting_booked"])).astype(int),
        "meetings_booked": (a["outcome"] == "meeting_booked").astype(int),
        "touch": 1,
    })


def snapshots(leads: pd.DataFrame, activities: pd.DataFrame, days: Sequence, max_age_days: int) -> pd.DataFrame:
    """One row per lead open on each of ``days``, with what was known about it on that day (see the
    module docstring). ``leads`` and ``activities`` are processed rows (every exported version)."""
    cols = ["lead_id", "day", *CATEGORICAL_FIELDS, *NUMERIC_FIELDS, "referred_by_client_id", "status", "owner",
            "company_name", *ENGAGEMENT, "last_engagement_at", "created_at", "age_days"]
    if leads.empty or not len(days):
        return pd.DataFrame(columns=[*cols, *ACTIVITY, "last_touch", "last_replies"])
    hist = H.versions(leads, "lead_id")
    first = hist.groupby("lead_id")["_day"].min()
    wanted = pd.DatetimeIndex(sorted({H.as_timestamp(d) for d in days}))
    grid = pd.DataFrame([(lead, d) for d in wanted for lead in first.index[first.to_numpy() <= d]],
                        columns=["lead_id", "day"])
    if grid.empty:
        return pd.DataFrame(columns=[*cols, *ACTIVITY, "last_touch", "last_replies"])
    snap = H.as_of(hist, "lead_id", grid)
    snap["age_days"] = H.days_since(snap["day"], snap["created_at"])
    snap = snap[snap["status"].isin(OPEN_STATUSES) & (snap["age_days"] >= 0) & (snap["age_days"] <= max_age_days)]
    snap = snap[cols].reset_index(drop=True)
    acts = _activity_flags(activities) if len(activities) else pd.DataFrame(columns=["lead_id", "_day"])
    counts = H.cumulative(acts, "lead_id", [*ACTIVITY, "touch"], snap[["lead_id", "day"]],
                          last=("touch", "replies"))
    snap = snap.merge(counts.drop(columns="touch"), on=["lead_id", "day"], how="left")
    return snap.sort_values(["day", "lead_id"], kind="mergesort").reset_index(drop=True)


def add_labels(snaps: pd.DataFrame, leads: pd.DataFrame, horizon_days: int, known_until) -> pd.DataFrame:
    """``label`` (converts within the horizon after the snapshot day) and ``label_complete``, from the
    leads' versions exported up to ``known_until`` (the training cut-off)."""
    final = H.latest(leads, "lead_id", known_until).set_index("lead_id")
    conv = H.day(final["converted_at"]).reindex(snaps["lead_id"]).to_numpy()
    day = H.day(snaps["day"]).to_numpy()
    horizon = np.timedelta64(horizon_days, "D")
    positive = (conv > day) & (conv <= day + horizon)
    out = snaps.copy()
    out["label"] = positive.astype(int)
    out["label_complete"] = day + horizon <= np.datetime64(H.as_timestamp(known_until))
    return out


# ---- features ---------------------------------------------------------------------------------------------
def _text(s: pd.Series) -> pd.Series:
    return s.map(lambda v: np.nan if v is None or (isinstance(v, float) and np.isnan(v))
                 else str(v).strip().lower().replace(" ", "_").replace("-", "_") or np.nan)


def features(snaps: pd.DataFrame) -> pd.DataFrame:
    """The model's feature columns (and the baseline's) from snapshot rows; missing inputs stay missing."""
    f = pd.DataFrame(index=snaps.index)

    def num(col):
        return H.as_float(snaps[col]) if col in snaps else pd.Series(np.nan, index=snaps.index)

    for c in CATEGORICAL_FIELDS:
        f[c] = _text(snaps[c]) if c in snaps else np.nan
    for c in (*NUMERIC_FIELDS, *ENGAGEMENT, *ACTIVITY, "age_days"):
        f[c] = num(c)
    comp = f["compliance_needs"]
    f["compliance_count"] = comp.map(lambda v: np.nan if pd.isna(v) else
                                     0 if v in ("none", "no", "n/a") else len([x for x in str(v).split("|") if x]))
    source = f["lead_source"]
    referred = snaps["referred_by_client_id"].notna() if "referred_by_client_id" in snaps else False
    f["referred"] = ((source == "referral") | referred).astype(float).where(source.notna() | referred, np.nan)
    f["log_employees"] = np.log1p(f["employees"])
    f["log_endpoints"] = np.log1p(f["endpoints"])
    weeks = np.maximum(f["age_days"].fillna(0), 7) / 7
    f["web_visits_per_week"] = f["web_visits"] / weeks
    f["forms_per_week"] = f["form_submissions"] / weeks
    f["meetings_per_week"] = f["meetings"] / weeks
    touches = f[["email_opens", "email_clicks", "form_submissions", "meetings", "replies"]].sum(axis=1, min_count=1)
    f["touches_per_week"] = touches / weeks
    f["open_rate"] = f["emails_opened"] / f["emails_out"].where(f["emails_out"] > 0)
    for name, col in (("days_since_engagement", "last_engagement_at"), ("days_since_activity", "last_touch"),
                      ("days_since_reply", "last_replies")):
        f[name] = H.days_since(snaps["day"], snaps[col]) if col in snaps and "day" in snaps else np.nan
    return f


def kinds() -> dict[str, str]:
    return {c: ("categorical" if c in CATEGORICAL_FIELDS else "numeric") for c in (*FEATURES, STACKED)}


def feature_kinds() -> dict[str, str]:
    """Kinds of the columns the registry lists for the model (what the trees see)."""
    return {c: kinds()[c] for c in TREE_FEATURES}


# ---- the named baseline ----------------------------------------------------------------------------------
class FieldsBaseline:
    """Logistic regression on the lead fields only (one-hot categories, log sizes, standardised)."""

    name = BASELINE_NAME

    def __init__(self, C: float = 1.0):
        self.C = C

    def _pipeline(self):
        from sklearn.compose import ColumnTransformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        cat = list(CATEGORICAL_FIELDS)
        num = [c for c in BASELINE_FEATURES if c not in CATEGORICAL_FIELDS]
        cats = make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                             OneHotEncoder(handle_unknown="ignore"))
        nums = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler())
        return make_pipeline(ColumnTransformer([("cat", cats, cat), ("num", nums, num)]),
                             LogisticRegression(C=self.C, max_iter=2000))

    def _x(self, f: pd.DataFrame) -> pd.DataFrame:
        x = f.reindex(columns=list(BASELINE_FEATURES))
        for c in CATEGORICAL_FIELDS:
            x[c] = x[c].astype(object).where(x[c].notna(), "missing")
        return x

    def fit(self, f: pd.DataFrame, y) -> FieldsBaseline:
        y = np.asarray(y, dtype=int)
        self.prior_ = float(y.mean()) if len(y) else 0.0
        self.pipe_ = self._pipeline().fit(self._x(f), y) if len(np.unique(y)) == 2 else None
        return self

    def predict_proba(self, f: pd.DataFrame) -> np.ndarray:
        if self.pipe_ is None:
            return np.full(len(f), self.prior_)
        return self.pipe_.predict_proba(self._x(f))[:, 1]

    def logit(self, f: pd.DataFrame) -> np.ndarray:
        p = np.clip(self.predict_proba(f), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))


# ---- the learned model -----------------------------------------------------------------------------------
def _gbm(params: Mapping[str, Any], random_state: int, columns: Sequence[str]):
    """Gradient-boosted trees on ``columns`` (encoded by their kinds), increasing in the stacked log-odds."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline

    from lakehouse.ml.tabular import FrameEncoder

    monotone = [1 if c == STACKED else 0 for c in columns]
    known = kinds()
    return Pipeline([("encode", FrameEncoder({c: known.get(c, "") for c in columns if c in known})),
                     ("model", HistGradientBoostingClassifier(categorical_features="from_dtype",
                                                              monotonic_cst=monotone,
                                                              random_state=random_state, **dict(params)))])


def _group_folds(groups: pd.Series, y: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """``n`` folds that keep each group's rows together, each holding both classes (None if impossible)."""
    from sklearn.model_selection import GroupKFold

    n = min(n, groups.nunique())
    if n < 2:
        return None
    folds = list(GroupKFold(n_splits=n).split(np.zeros(len(y)), y, groups.to_numpy()))
    if any(len(np.unique(y[te])) < 2 or len(np.unique(y[tr])) < 2 for tr, te in folds):
        return None
    return folds


@dataclass
class LeadScorer:
    """What the registry stores: the baseline, the calibrated model, and the quartile cut points of the
    model's scores on its reference rows (priority tiers)."""

    baseline: FieldsBaseline
    model: Any
    features: list[str]
    tier_cuts: list[float]
    horizon_days: int
    calibration: str
    params: dict[str, Any] = field(default_factory=dict)

    def _x(self, f: pd.DataFrame) -> pd.DataFrame:
        x = f.reindex(columns=[c for c in self.features if c != STACKED])
        return x.assign(**{STACKED: self.baseline.logit(f)})[self.features]

    def predict(self, f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(model probability, baseline probability) for feature rows (see :func:`features`)."""
        from threadpoolctl import threadpool_limits

        if f.empty:
            return np.zeros(0), np.zeros(0)
        with threadpool_limits(1):
            return self.model.predict_proba(self._x(f))[:, 1], self.baseline.predict_proba(f)

    def tier(self, p) -> np.ndarray:
        """Priority tier of each probability: the quartile of the reference scores it falls in."""
        p = np.asarray(p, dtype=float)
        hi, mid, lo = self.tier_cuts
        return np.where(p >= hi, TIER_NAMES[0], np.where(p >= mid, TIER_NAMES[1],
                                                          np.where(p >= lo, TIER_NAMES[2], TIER_NAMES[3])))


def fit(train_f: pd.DataFrame, y, groups: pd.Series, *, params: Mapping[str, Any], calibration: str,
        folds: int, random_state: int, horizon_days: int, baseline_c: float,
        columns: Sequence[str] = TREE_FEATURES) -> LeadScorer:
    """Fit the baseline and the calibrated model on feature rows ``train_f`` with labels ``y``; ``groups``
    (the lead ids) keep a lead's snapshots in one fold. ``columns`` are what the trees see."""
    from sklearn.calibration import CalibratedClassifierCV
    from threadpoolctl import threadpool_limits

    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise NotEnoughData("the training rows hold a single class: nothing to learn")
    baseline = FieldsBaseline(baseline_c).fit(train_f, y)
    cols = list(columns)
    x = train_f.reindex(columns=[c for c in cols if c != STACKED])
    x = x.assign(**{STACKED: _cross_fitted_logit(train_f, y, groups, baseline_c, folds)})[cols]
    est = _gbm(params, random_state, cols)
    cv = _group_folds(groups.reset_index(drop=True), y, folds)
    with threadpool_limits(1):
        if calibration in ("sigmoid", "isotonic") and cv is not None:
            # ensemble=False: one calibrator on the out-of-fold scores, applied to trees fitted on all rows
            model = CalibratedClassifierCV(est, method=calibration, cv=cv, ensemble=False).fit(x, y)
            used = f"{calibration} on out-of-fold scores, {len(cv)} lead-grouped folds"
        else:
            model, used = est.fit(x, y), "none"
    scorer = LeadScorer(baseline, model, cols, [0.0, 0.0, 0.0], horizon_days, used, dict(params))
    p, _ = scorer.predict(train_f)
    scorer.tier_cuts = [float(q) for q in np.quantile(p, [0.75, 0.5, 0.25])]
    return scorer


def _cross_fitted_logit(f: pd.DataFrame, y: np.ndarray, groups: pd.Series, c: float, folds: int) -> np.ndarray:
    """The baseline's log-odds for training rows, each from a baseline fitted without that row's lead, on
    the same lead-grouped folds as the calibration.

    An in-sample fit reads better on the training rows than the final baseline will on new leads (a lead's
    ten snapshots let the regression learn the lead), so trees fed in-sample log-odds over-trust them and
    are over-confident on the test months (measured on small: ECE 0.09 instead of 0.04). Out-of-fold
    log-odds from baselines that saw two thirds of the leads err the other way, slightly weaker than the
    final baseline's, which makes the trees a little conservative, and the calibration then fixes the scale."""
    out = np.zeros(len(f))
    cv = _group_folds(groups.reset_index(drop=True), y, folds)
    if cv is None:
        return FieldsBaseline(c).fit(f, y).logit(f)
    for tr, te in cv:
        out[te] = FieldsBaseline(c).fit(f.iloc[tr], y[tr]).logit(f.iloc[te])
    return out


# ---- split, train, evaluate ------------------------------------------------------------------------------
@dataclass
class TrainResult:
    scorer: LeadScorer
    metrics: dict[str, Any]
    split: dict[str, Any]
    train: pd.DataFrame
    test: pd.DataFrame
    importance: dict[str, float] = field(default_factory=dict)


def time_split(snaps: pd.DataFrame, test_share: float, horizon_days: int):
    """(train, test, description) of labelled snapshots: see the module docstring."""
    labelled = snaps[snaps["label_complete"]]
    days = sorted(labelled["day"].unique())
    if len(days) < 2:
        raise NotEnoughData(f"{len(days)} snapshot day(s) with a complete {horizon_days}-day label; need at least 2")
    n_test = min(len(days) - 1, max(1, round(len(days) * test_share)))
    first_test = pd.Timestamp(days[-n_test])
    test = labelled[labelled["day"] >= first_test]
    train = labelled[labelled["day"] + pd.Timedelta(days=horizon_days) < first_test]
    info = {"snapshot_days": len(days), "test_days": n_test, "train_from": str(pd.Timestamp(days[0]).date()),
            "train_to": str(train["day"].max().date()) if len(train) else None,
            "test_from": str(first_test.date()), "test_to": str(pd.Timestamp(days[-1]).date()),
            "embargo_days": horizon_days, "train_rows": len(train), "test_rows": len(test),
            "train_leads": int(train["lead_id"].nunique()), "test_leads": int(test["lead_id"].nunique()),
            "train_positives": int(train["label"].sum()), "test_positives": int(test["label"].sum())}
    return train, test, info


def train(snaps: pd.DataFrame, *, test_share: float, horizon_days: int, min_train_positives: int,
          params: Mapping[str, Any], calibration: str, folds: int, random_state: int,
          baseline_c: float) -> TrainResult:
    """Split, fit both on the training snapshots, measure both on the test snapshots."""
    from lakehouse.ml.metrics import binary_metrics

    tr, te, info = time_split(snaps, test_share, horizon_days)
    if info["train_positives"] < min_train_positives or info["test_positives"] < 1:
        raise NotEnoughData(f"{info['train_positives']} conversion snapshot(s) to train on "
                            f"({info['train_from']}..{info['train_to']}) and {info['test_positives']} to test on; "
                            f"need {min_train_positives} and 1 (spo.lead_min_train_positives)")
    f_tr, f_te = features(tr), features(te)
    scorer = fit(f_tr, tr["label"], tr["lead_id"], params=params, calibration=calibration, folds=folds,
                 random_state=random_state, horizon_days=horizon_days, baseline_c=baseline_c)
    p_model, p_base = scorer.predict(f_te)
    metrics = {**binary_metrics(te["label"], p_model), "baseline": binary_metrics(te["label"], p_base)}
    te = te.assign(probability=p_model, baseline_probability=p_base, tier=scorer.tier(p_model))
    importance = permutation_importance(scorer, f_te, te["label"].to_numpy(), random_state=random_state)
    return TrainResult(scorer, metrics, info, tr, te, importance)


def permutation_importance(scorer: LeadScorer, f: pd.DataFrame, y: np.ndarray, repeats: int = 3,
                           random_state: int = 0, top: int = 12) -> dict[str, float]:
    """Drop in test ROC-AUC when a feature is shuffled (the baseline's inputs shuffled with it)."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return {}
    rng = np.random.default_rng(random_state)
    base = roc_auc_score(y, scorer.predict(f)[0])
    out = {}
    for c in FEATURES:  # a lead field moves the stacked log-odds, an engagement column the trees
        drops = []
        for _ in range(repeats):
            g = f.copy()
            g[c] = g[c].to_numpy()[rng.permutation(len(g))]
            drops.append(base - roc_auc_score(y, scorer.predict(g)[0]))
        out[c] = round(float(np.mean(drops)), 4)
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:top])


def reliability(y_true, prob, bins: int = 10) -> list[dict[str, Any]]:
    """Observed conversion rate against mean probability in equal-width bins (the model card's table; the
    same bins as the expected calibration error of :mod:`lakehouse.ml.metrics`)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(prob, dtype=float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        m = idx == b
        if m.any():
            rows.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "rows": int(m.sum()),
                         "mean_probability": round(float(p[m].mean()), 4),
                         "observed_rate": round(float(y[m].mean()), 4)})
    return rows


def score(scorer: LeadScorer, snaps: pd.DataFrame) -> pd.DataFrame:
    """Snapshot rows with ``probability``, ``baseline_probability`` and ``tier``."""
    f = features(snaps)
    p, b = scorer.predict(f)
    return snaps.assign(probability=p, baseline_probability=b, tier=scorer.tier(p) if len(p) else [])


def reasons(snaps: pd.DataFrame, top: int = 3) -> list[str | None]:
    """Plain facts behind a score that a rep can check on the lead's record: referral, compliance needs,
    today's IT model, meetings, replies, forms, and a silence of more than three weeks (the first ``top``)."""
    f = features(snaps)

    def plural(n: pd.Series, one: str, many: str) -> pd.Series:
        return n.fillna(0).astype(int).astype(str) + np.where(n.fillna(0) == 1, one, many)

    comp = snaps["compliance_needs"].astype(object) if "compliance_needs" in snaps else pd.Series(None, index=f.index)
    model = snaps["current_it_model"].astype(object) if "current_it_model" in snaps else pd.Series(None, index=f.index)
    silence = f["days_since_activity"]
    parts = [
        (f["referred"] == 1, pd.Series("referred by a client", index=f.index)),
        (f["compliance_count"].fillna(0) > 0, "compliance needs: " + comp.astype(str)),
        (model.isin(["break_fix", "other_msp"]), "IT today: " + model.astype(str).str.replace("_", " ")),
        (f["meetings"].fillna(0) > 0, plural(f["meetings"], " meeting", " meetings")),
        (f["replies"].fillna(0) > 0, plural(f["replies"], " reply", " replies")),
        (f["form_submissions"].fillna(0) > 0, plural(f["form_submissions"], " form", " forms")),
        (silence.fillna(0) > 21, "no activity for " + silence.fillna(0).astype(int).astype(str) + " days"),
    ]
    texts = [[] for _ in range(len(f))]
    for mask, text in parts:
        for i in np.flatnonzero(mask.to_numpy()):
            if len(texts[i]) < top:
                texts[i].append(text.iloc[i])
    return ["; ".join(t) or None for t in texts]


# ---- a user's own lead export (msp model evaluate) ---------------------------------------------------------
EXTRA = "csv:"  #: prefix of a user's columns the scorer does not know (kept as extra tree features)


@dataclass
class ExportScorer:
    """The lead scorer (or its baseline) fitted on a user's export: scores frames shaped like it."""

    features: list[str]
    mapping: dict[str, str]
    scorer: LeadScorer
    part: str  #: "model" or "baseline"

    def frame(self, raw: pd.DataFrame) -> pd.DataFrame:
        return export_features(raw, self.features, self.mapping)[0]

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        p, b = self.scorer.predict(self.frame(raw))
        return p if self.part == "model" else b


def export_features(raw: pd.DataFrame, columns: Sequence[str], mapping: Mapping[str, str] | None = None
                    ) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """(feature rows, the user's column → field mapping, the extra columns kept) of a user's lead export;
    ``mapping`` is the one found at fitting (columns missing from ``raw`` read as missing values)."""
    from models.spo.lead_export import normalise

    norm, mapping = normalise(raw, columns, dict(mapping) if mapping is not None else None)
    f = features(norm)
    extra = [c for c in columns if c not in mapping]
    for c in extra:
        f[f"{EXTRA}{c}"] = norm[c].to_numpy() if c in norm.columns else np.nan
    return f, mapping, [f"{EXTRA}{c}" for c in extra]


def _fit_export(frame: pd.DataFrame, label: str, columns: list[str], params: Mapping[str, Any],
                part: str) -> ExportScorer:
    f, mapping, extra = export_features(frame, columns)
    y = np.asarray(frame[label], dtype=int)
    scorer = fit(f, y, pd.Series(np.arange(len(f))), params=params.get("model_params", {}),
                 calibration=params.get("calibration", "sigmoid"), folds=int(params.get("folds", 3)),
                 random_state=int(params.get("random_state", 0)), horizon_days=int(params.get("embargo_days", 0)),
                 baseline_c=float(params.get("baseline_c", 1.0)), columns=[*TREE_FEATURES[:-1], *extra, STACKED])
    return ExportScorer(list(columns), mapping, scorer, part)


def fit_export_model(frame: pd.DataFrame, label: str, columns: list[str], params: Mapping[str, Any]) -> ExportScorer:
    """:class:`lakehouse.ml.ModelSpec` ``fit``: the calibrated trees with the stacked baseline."""
    return _fit_export(frame, label, columns, params, "model")


def fit_export_baseline(frame: pd.DataFrame, label: str, columns: list[str],
                        params: Mapping[str, Any]) -> ExportScorer:
    """:class:`lakehouse.ml.ModelSpec` ``fit_baseline``: the logistic regression on the lead fields."""
    return _fit_export(frame, label, columns, params, "baseline")


def export_baseline_name(columns: list[str]) -> str:
    from models.spo.lead_export import column_map

    fields = sorted(set(column_map(columns).values()) & {*CATEGORICAL_FIELDS, *NUMERIC_FIELDS})
    return (f"logistic regression on the lead fields found ({', '.join(fields)})" if fields else
            "logistic regression on the lead fields (none recognised: the base rate)")


def spec_params(settings: Any) -> dict[str, Any]:
    """The scorer's parameters from the agent's settings (``SpoSettings``), by the names used here."""
    return {"model_params": dict(settings.lead_model_params), "calibration": settings.lead_calibration,
            "folds": settings.lead_calibration_folds, "random_state": settings.lead_random_state,
            "baseline_c": settings.lead_baseline_c, "test_share": settings.lead_test_share,
            "embargo_days": settings.lead_horizon_days}


SPEC = ModelSpec(name="lead_score", title="lead score (calibrated gradient boosting on engagement, stacked on the "
                 "lead-fields baseline)", fit=fit_export_model, fit_baseline=fit_export_baseline,
                 baseline=export_baseline_name, params=spec_params, primary_metric="pr_auc")
