"""The stronger extractor: typed candidates, a learned role classifier over their context, joint decoding.

1. **Candidates** (:mod:`models.vcm.candidates`): every date, month and day duration, amount and jurisdiction.
2. **Roles**: one multinomial logistic regression per candidate kind (dates: agreement / effective /
   expiration / other; months: term / renewal / other; days: notice / other; amounts: price / other;
   jurisdictions: governing law / other), over features of the candidate's context that carry meaning
   rather than our templates' words: the lexicon groups (:data:`models.vcm.text.LEXICON`) of the words just
   before and after it (by distance), of its clause and of its heading; its rank among candidates of its
   kind; and which role the rules baseline gives it. Raw neighbouring words are a switchable extra
   (``words=True``), off by default: they recall our own templates and do not carry to unseen wording.
3. **Joint decoding** of the dates and the term: every assignment of (agreement, effective, expiration,
   term) is scored by the classifiers' log-probabilities plus a bonus when the expiration is the term's end
   from the effective date (and a penalty when it contradicts it or the dates run backwards); a field's
   confidence is its value's marginal probability over all assignments.
4. Parties, renewal, payment terms and the liability cap come from the shared rules
   (:mod:`models.vcm.rules`), the vendor master as a last resort for the vendor.

Trained on a labelled corpus (:mod:`models.vcm.corpus`); stored in the model registry as ``vcm-extractor``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from models.vcm.candidates import Candidate, Document, document
from models.vcm.evaluate import truth_value
from models.vcm.fields import Extraction, FieldValue, finish, term_ends
from models.vcm.rules import (
    DATE_LABEL,
    RulesExtractor,
    amount_role,
    date_roles,
    duration_roles,
    fv,
    law_role,
    left_text,
    liability,
    payment_terms,
    pick_parties,
    renewal,
    right_text,
)
from models.vcm.text import groups_in, groups_of, tokens

MODEL_NAME = "vcm-extractor"
ROLES: dict[str, tuple[str, ...]] = {
    "date": ("agreement_date", "effective_date", "expiration_date"),
    "months": ("term_months", "renewal_term_months"),
    "days": ("notice_period_days",),
    "money": ("stated_amount",),
    "law": ("governing_law",),
}
OTHER = "other"


def baseline_roles(doc: Document) -> dict[int, str]:
    """id(candidate) → the field the rules baseline gives it (a feature of the learned model)."""
    chosen: dict[str, FieldValue] = {}
    for part in (date_roles(doc), duration_roles(doc), amount_role(doc), law_role(doc)):
        chosen.update(part)
    out = {}
    for kind in ROLES:
        for c in doc.candidates[kind]:
            for name, f in chosen.items():
                if f.start == c.start and f.end == c.end:
                    out[id(c)] = name
    return out


def features(doc: Document, c: Candidate, rank: int, count: int, rule: str | None, words: bool = False) -> dict:
    f: dict[str, float] = {"bias": 1.0, f"rank={min(rank, 4)}": 1.0, f"rank_from_end={min(count - 1 - rank, 4)}": 1.0}
    if rule:
        f[f"rule={rule}"] = 1.0
    before = tokens(left_text(doc, c))
    for i, t in enumerate(reversed(before[-8:])):
        for g in groups_of(t):
            f[f"L{min(i, 4)}:{g}"] = 1.0
            f[f"L:{g}"] = 1.0
    for g in groups_in(left_text(doc, c, stop_at_previous=False)):
        f[f"LC:{g}"] = 1.0
    after = tokens(right_text(doc, c, 50))
    for i, t in enumerate(after[:6]):
        for g in groups_of(t):
            f[f"R{min(i, 3)}:{g}"] = 1.0
    cl = doc.clauses[c.clause]
    for g in groups_in(doc.prepared[cl.start:cl.end]):
        f[f"C:{g}"] = 1.0
    for g in groups_in(cl.heading):
        f[f"H:{g}"] = 1.0
    if DATE_LABEL.match(cl.heading.strip()):
        f["H=date"] = 1.0
    if c.kind == "money" and c.extra.get("basis"):
        f["has_basis"] = 1.0
    if c.kind == "months":
        f[f"unit={c.extra.get('unit')}"] = 1.0
    if words:
        for i, t in enumerate(reversed(before[-3:])):
            f[f"w-{i}={t}"] = 1.0
        for t in tokens(cl.heading)[:4]:
            f[f"hw={t}"] = 1.0
    return f


def doc_features(doc: Document, words: bool = False) -> dict[str, list[tuple[Candidate, dict]]]:
    rules = baseline_roles(doc)
    out = {}
    for kind in ROLES:
        cands = doc.candidates[kind]
        out[kind] = [(c, features(doc, c, i, len(cands), rules.get(id(c)), words)) for i, c in enumerate(cands)]
    return out


def labels(doc: Document, truth: dict) -> dict[int, str]:
    """id(candidate) → its role from the truth: a candidate whose value is the truth of exactly one role,
    and the only candidate with that value; candidates matching several roles, or sharing the value with
    another candidate, are left out (ambiguous), the rest are ``other``."""
    out: dict[int, str] = {}
    for kind, roles in ROLES.items():
        want = {r: truth_value(r, truth.get(r)) for r in roles}
        if kind == "days" and not truth_value("auto_renew", truth.get("auto_renew")):
            want = dict.fromkeys(roles)
        cands = doc.candidates[kind]
        for c in cands:
            hits = [r for r, v in want.items() if v is not None and v == c.value]
            same = [o for o in cands if o.value == c.value]
            if len(hits) == 1 and len(same) == 1:
                out[id(c)] = hits[0]
            elif not hits:
                out[id(c)] = OTHER
    return out


@dataclass
class RoleModel:
    """One classifier per candidate kind (a DictVectorizer and a LogisticRegression)."""

    models: dict[str, Any] = field(default_factory=dict)
    words: bool = False

    def fit(self, docs: list[tuple[Document, dict]], C: float = 1.0) -> RoleModel:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        data: dict[str, tuple[list, list]] = {k: ([], []) for k in ROLES}
        for doc, truth in docs:
            lab = labels(doc, truth)
            for kind, rows in doc_features(doc, self.words).items():
                for c, f in rows:
                    if id(c) in lab:
                        data[kind][0].append(f)
                        data[kind][1].append(lab[id(c)])
        for kind, (X, y) in data.items():
            if len(set(y)) < 2:
                continue
            self.models[kind] = make_pipeline(DictVectorizer(), LogisticRegression(C=C, max_iter=3000)).fit(X, y)
        return self

    def proba(self, kind: str, feats: list[dict]) -> list[dict[str, float]]:
        m = self.models.get(kind)
        if m is None or not feats:  # a kind training never saw two roles of: the rules' role, trusted less
            return [{f[k][len("rule="):] if any(k.startswith("rule=") for k in f) else OTHER: 0.75,
                     OTHER: 0.25} if any(k.startswith("rule=") for k in f) else {OTHER: 1.0}
                    for f in feats for k in [next((k for k in f if k.startswith("rule=")), "")]]
        classes = list(m.classes_)
        return [dict(zip(classes, p, strict=True)) for p in m.predict_proba(feats)]


def _log(p: float) -> float:
    return math.log(max(p, 1e-6))


def decode_dates(date_c: list[tuple[Candidate, dict]], month_c: list[tuple[Candidate, dict]]
                 ) -> dict[str, tuple[Candidate | None, float]]:
    """Joint (agreement, effective, expiration, term): marginal probability of the best assignment's values."""
    roles = ROLES["date"]
    by_value: dict[Any, tuple[Candidate, dict]] = {}
    for c, p in date_c:
        prev = by_value.get(c.value)
        merged = {r: max(p.get(r, 0.0), prev[1].get(r, 0.0)) if prev else p.get(r, 0.0) for r in roles}
        by_value[c.value] = (prev[0] if prev else c, merged)
    dates = sorted(by_value.values(), key=lambda x: -max(x[1].values()))[:7]
    terms: dict[int, tuple[Candidate, float]] = {}
    for c, p in month_c:
        if p.get("term_months", 0) > terms.get(c.value, (None, 0.0))[1]:
            terms[c.value] = (c, p.get("term_months", 0.0))
    term_opts = sorted(terms.values(), key=lambda x: -x[1])[:5]
    none_p = {r: max(1e-3, 1 - max((p[r] for _, p in dates), default=0.0)) for r in roles}
    t_none = max(1e-3, 1 - max((p for _, p in term_opts), default=0.0))
    opts = [None, *dates]
    combos = []
    for a in opts:
        for e in opts:
            if e is not None and a is not None and e[0].value == a[0].value:
                continue
            for x in opts:
                if x is not None and ((a is not None and x[0].value == a[0].value) or
                                      (e is not None and x[0].value == e[0].value)):
                    continue
                if e is not None and x is not None and x[0].value <= e[0].value:
                    continue
                base = sum(_log(o[1][r]) if o is not None else _log(none_p[r]) for o, r in zip((a, e, x), roles,
                                                                                                strict=True))
                if a is not None and e is not None and a[0].value > e[0].value + timedelta(days=366):
                    base -= math.log(10)
                for t in [None, *term_opts]:
                    s = base + (_log(t[1]) if t is not None else _log(t_none))
                    if t is not None and e is not None and x is not None:
                        s += math.log(20) if x[0].value in term_ends(e[0].value, t[0].value) else -math.log(5)
                    combos.append((s, a, e, x, t))
    if not combos:
        return {}
    top = max(s for s, *_ in combos)
    weights = [math.exp(s - top) for s, *_ in combos]
    total = sum(weights)
    best = max(range(len(combos)), key=lambda i: combos[i][0])
    _, *chosen = combos[best]
    out: dict[str, tuple[Candidate | None, float]] = {}
    for k, name in enumerate((*roles, "term_months")):
        pick = chosen[k]
        value = None if pick is None else pick[0].value
        marginal = sum(w for w, c in zip(weights, combos, strict=True)
                       if (c[k + 1] is None and value is None) or (c[k + 1] is not None and c[k + 1][0].value == value))
        out[name] = (None if pick is None else pick[0], marginal / total)
    return out


class LearnedExtractor:
    """``extract(pages)`` → :class:`~models.vcm.fields.Extraction`, with a fitted :class:`RoleModel`."""

    name = "model"

    def __init__(self, roles: RoleModel, msp_names: Sequence[str] = (), date_order: str = "MDY",
                 version: str = "model:unsaved"):
        self.roles = roles
        self.msp_names = tuple(msp_names)
        self.date_order = date_order
        self.version = version

    def extract(self, pages: list[str] | str, known_vendors: Sequence[str] = ()) -> Extraction:
        return self.extract_doc(document(pages, self.date_order), known_vendors)

    def extract_doc(self, doc: Document, known_vendors: Sequence[str] = ()) -> Extraction:
        feats = doc_features(doc, self.roles.words)
        probs = {k: list(zip([c for c, _ in rows], self.roles.proba(k, [f for _, f in rows]), strict=True))
                 for k, rows in feats.items()}
        fields: dict[str, FieldValue] = {}
        fields.update(pick_parties(doc, self.msp_names, known_vendors))
        for name, (c, p) in decode_dates(probs["date"], probs["months"]).items():
            if c is not None:
                fields[name] = fv(doc, name, c, c.value, p, "model:joint dates+term")
        fields.update(renewal(doc))
        renews = bool(fields["auto_renew"].value)
        for kind, name in (("months", "renewal_term_months"), ("days", "notice_period_days"),
                           ("money", "stated_amount"), ("law", "governing_law")):
            ranked = sorted(probs[kind], key=lambda cp: -cp[1].get(name, 0.0))
            if not ranked or ranked[0][1].get(name, 0.0) < 0.3:
                continue
            c, p = ranked[0]
            if name in ("renewal_term_months", "notice_period_days") and not renews:
                continue
            fields[name] = fv(doc, name, c, c.value, p[name], f"model:{kind}")
            if name == "stated_amount":
                basis = c.extra.get("basis")
                if basis:
                    s, e = c.extra["basis_span"]
                    fields["value_basis"] = FieldValue("value_basis", basis, p[name], s, e, doc.text[s:e],
                                                       "money:basis words", doc.page_of(s))
                fields["currency"] = fv(doc, "currency", c, c.extra.get("currency", "USD"), p[name], "money:symbol")
        pt = payment_terms(doc)
        if pt is not None:
            fields["payment_terms"] = pt
        fields["liability_cap"] = liability(doc)
        self._layer_rules(doc, fields, probs)
        self._canonical_names(fields, known_vendors)
        issues = finish(fields)
        return Extraction(fields, self.version, issues)

    def _layer_rules(self, doc: Document, fields: dict[str, FieldValue], probs) -> None:
        """Where the classifier found nothing (or next to nothing), the rule that did fills in, trusted less;
        renewal wording too garbled to read is decided by whether a renewal term was found."""
        rules: dict[str, FieldValue] = {}
        for part in (date_roles(doc), duration_roles(doc), amount_role(doc), law_role(doc)):
            rules.update(part)
        for name, f in rules.items():
            mine = fields.get(name)
            if mine is None or mine.value is None or mine.confidence < 0.4:
                fields[name] = FieldValue(name, f.value, f.confidence * 0.8, f.start, f.end, f.text,
                                          f"rules fallback ({f.method})", f.page)
        renew = fields.get("auto_renew")
        if renew is not None and renew.value is False and renew.confidence < 0.6:
            best = max((p.get("renewal_term_months", 0.0) for _, p in probs["months"]), default=0.0)
            if best >= 0.5 or "renewal_term_months" in rules:
                fields["auto_renew"] = FieldValue("auto_renew", True, 0.6, method="model:renewal term found")
                if "renewal_term_months" in rules and fields.get("renewal_term_months") is None:
                    fields["renewal_term_months"] = rules["renewal_term_months"]
                if "notice_period_days" in rules and fields.get("notice_period_days") is None:
                    fields["notice_period_days"] = rules["notice_period_days"]

    def _canonical_names(self, fields: dict[str, FieldValue], known_vendors: Sequence[str]) -> None:
        """Our own name as configured, and a vendor as the vendor master spells it, when the text's spelling
        is close (OCR drops a space or reads 'e' as 'c')."""
        from models.vcm.rules import similar

        for name, known, floor in (("msp_party", self.msp_names, 0.8), ("vendor_name", known_vendors, 0.85)):
            f = fields.get(name)
            if f is None or not f.value or not known:
                continue
            score, best = max((similar(f.value, k), k) for k in known)
            if score >= floor and best != f.value:
                f.notes.append(f"read as {f.value!r}")
                f.value, f.method = best, f"{f.method}; canonical name ({score:.2f})"


def train(docs: list[tuple[list[str], dict]], msp_names: Sequence[str], date_order: str = "MDY",
          words: bool = False, C: float = 1.0) -> LearnedExtractor:
    prepared = [(document(pages, date_order), truth) for pages, truth in docs]
    return LearnedExtractor(RoleModel(words=words).fit(prepared, C), msp_names, date_order)


def evaluate(extractor, docs: list[tuple[list[str], dict]], label: str) -> list[tuple[str, str, dict[str, bool]]]:
    from models.vcm.evaluate import score

    return [(truth.get("format", ""), label, score(extractor.extract(pages), truth)) for pages, truth in docs]


def rules_extractor(msp_names: Sequence[str], date_order: str = "MDY") -> RulesExtractor:
    return RulesExtractor(msp_names, date_order)
