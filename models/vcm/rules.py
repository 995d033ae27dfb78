"""The rules baseline: patterns, a date parser and keyword cues, and nothing learned.

Each typed candidate (:mod:`models.vcm.candidates`) takes the role its nearest cue word gives it: a date
right after "commence"/"start"/"effective" opens the term, one after "end"/"expire"/"through" closes it, one
after "dated"/"signed"/"made"/"entered into" dates the agreement; a month duration in a sentence about
renewal is the renewal term, otherwise the term; a day duration in a sentence about notice and renewal or
termination is the notice period; an amount in a sentence about fees is the price; a jurisdiction in a
sentence about law is the governing law. The first candidate of each role wins. Confidence is fixed per rule
(a cue right before the value is worth more than one further away).

The party, renewal and liability rules here are shared with the stronger extractor, which adds its learned
roles, joint decoding and the vendor master on top (:mod:`models.vcm.learned`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from models.vcm.candidates import Candidate, Document, document, mentions
from models.vcm.fields import Extraction, FieldValue, finish
from models.vcm.text import fold, groups_of, name_key, tokens

NAME = "rules"
VERSION = "rules-1"


# ---- context helpers (shared) ----------------------------------------------------------------------------------
def left_text(doc: Document, c: Candidate, stop_at_previous: bool = True) -> str:
    """The clause's text before a candidate, from the end of the previous candidate of any kind in the same
    clause (so a cue belongs to the value it precedes, not to the one before)."""
    cl = doc.clauses[c.clause]
    start = cl.start
    if stop_at_previous:
        for kind in ("date", "months", "days", "money"):
            for o in doc.candidates.get(kind, ()):
                if o.clause == c.clause and o.end <= c.start and o.end > start:
                    start = o.end
    return doc.prepared[start:c.start]


def right_text(doc: Document, c: Candidate, chars: int = 60) -> str:
    cl = doc.clauses[c.clause]
    return doc.prepared[c.end:min(cl.end, c.end + chars)]


def nearest_cue(text_before: str, wanted: Iterable[str], heading: str = "") -> tuple[str | None, int]:
    """The lexicon group of the nearest word before a value that belongs to one of ``wanted`` (and how many
    words back it is); the clause heading is searched last."""
    wanted = tuple(wanted)
    toks = tokens(text_before)
    for i, t in enumerate(reversed(toks)):
        for g in groups_of(t):
            if g in wanted:
                return g, i
    for t in reversed(tokens(heading)):
        for g in groups_of(t):
            if g in wanted:
                return g, len(toks) + 5
    return None, -1


def clause_groups(doc: Document, c: Candidate | int) -> set[str]:
    from models.vcm.text import groups_in

    idx = c if isinstance(c, int) else c.clause
    cl = doc.clauses[idx]
    return groups_in(doc.prepared[cl.start:cl.end]) | {f"H:{g}" for g in groups_in(cl.heading)}


def fv(doc: Document, name: str, c: Candidate | None, value: Any, confidence: float, method: str) -> FieldValue:
    if c is None:
        return FieldValue(name, value, confidence, method=method)
    return FieldValue(name, value, confidence, c.start, c.end, doc.text[c.start:c.end], method, doc.page_of(c.start))


# ---- parties (shared) --------------------------------------------------------------------------------------------
def similar(a: str, b: str) -> float:
    """Similarity of two names (0-1) after :func:`name_key`; tolerant of OCR slips."""
    from difflib import SequenceMatcher

    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return 0.0
    if ka == kb:
        return 1.0
    return SequenceMatcher(None, ka, kb).ratio()


def pick_parties(doc: Document, msp_names: Sequence[str], known_vendors: Sequence[str] = ()) -> dict[str, FieldValue]:
    """Our party and the vendor. Our party is the defined party whose name matches one of ``msp_names``
    (else the customer-side role); the vendor is the other defined party, preferring a supplier-side role
    and skipping signatories and affiliates. ``known_vendors`` (the vendor master) is a last resort: a
    vendor name that appears in the text."""
    parties = [p for p in doc.candidates["party"] if not p.extra.get("signatory")]
    defined = [p for p in parties if p.extra.get("form") in ("marker", "label")]
    pool = defined or parties
    out: dict[str, FieldValue] = {}

    def is_ours(p: Candidate) -> float:
        return max((similar(p.value, n) for n in msp_names), default=0.0)

    ours = sorted(pool, key=lambda p: (-is_ours(p), p.start))
    us = ours[0] if ours and is_ours(ours[0]) >= 0.85 else next(
        (p for p in pool if p.extra.get("side") == "customer"), None)
    if us is not None:
        out["msp_party"] = fv(doc, "msp_party", us, us.value, 0.95 if is_ours(us) >= 0.85 else 0.6,
                              f"party:{us.extra.get('form')}:{us.extra.get('role') or 'name'}")
    elif msp_names:
        hit = mentions(doc, list(msp_names))
        if hit:
            out["msp_party"] = fv(doc, "msp_party", hit[0], hit[0].value, 0.7, "party:known-name")
    others = [p for p in pool if us is None or (name_key(p.value) != name_key(us.value) and is_ours(p) < 0.85)]
    others = [p for p in others if not p.extra.get("affiliate")] or others
    vendor = next((p for p in others if p.extra.get("side") == "vendor"), None) or (others[0] if others else None)
    if vendor is not None:
        conf = 0.95 if vendor.extra.get("side") == "vendor" and vendor.extra.get("form") in ("marker", "label") else 0.7
        out["vendor_name"] = fv(doc, "vendor_name", vendor, vendor.value, conf,
                                f"party:{vendor.extra.get('form')}:{vendor.extra.get('role') or 'name'}")
    elif known_vendors:
        hit = sorted(mentions(doc, list(known_vendors)), key=lambda c: c.start)
        if hit:
            out["vendor_name"] = fv(doc, "vendor_name", hit[0], hit[0].value, 0.6, "party:vendor-master")
    return out


# ---- renewal, liability, payment terms (shared) ---------------------------------------------------------------------
POSITIVE_RENEWAL = re.compile(
    r"\bautomatic(?:ally)?\s+(?:be\s+)?(?:renew|extend|continu)|\bauto[-\s]?renew|\brenews?\s+automatically|"
    r"\b(?:shall|will)\s+(?:automatically\s+)?(?:renew|extend|be\s+renewed|be\s+extended)|\bevergreen\b|"
    r"\bcontinues?\s+(?:in\s+(?:effect|force)\s+)?(?:in|for)\s+.{0,40}?(?:increments|periods|terms)|"
    r"\bsuccessive\s+(?:renewal\s+)?(?:terms|periods)|\brenewal:\s*automatic|\bcontinue\s+.{0,60}until\s+terminated|"
    r"\brenew(?:s|ed)?\s+for\s+(?:successive|additional|further)|\brolls?\s+over\b|"
    r"\bautomatically\b(?=.{0,60}\b(?:periods?|terms?|years?|months?)\b)", re.I)
NEGATIVE_RENEWAL = re.compile(
    r"\b(?:shall|will|does|do|is)\s+not\s+(?:be\s+)?(?:automatically\s+)?(?:renew|extend|be\s+renewed)|"
    r"\bnot\s+renew\s+automatically|\bno\s+(?:automatic\s+)?(?:renewal|extension)|\bwithout\s+(?:automatic\s+)?renewal|"
    r"\bnon[-\s]?renewable|\bfixed[-\s]term\b|\brenewal:\s*none|\bterminates?\s+(?:automatically\s+)?on\s+the\s+"
    r"expiration|\bexpire\s+at\s+the\s+end\s+of\s+the\s+(?:initial\s+)?term|\bwithout\s+further\s+action|"
    r"\bany\s+renewal\s+requires|\bends\s+on\s+the\s+expiration\s+date|\bdoes\s+not\s+renew|\bwill\s+not\s+renew",
    re.I)
EVERGREEN = re.compile(r"\bevergreen\b|\buntil\s+terminated\b|\bmonth[-\s]to[-\s]month\b", re.I)


def renewal(doc: Document) -> dict[str, FieldValue]:
    """Whether the contract renews by itself, from the sentences about renewal: every positive cue
    (automatically renew, successive terms, evergreen) against every negative one (shall not renew, fixed
    term, terminates on the expiration date). A negative cue wins a tie: renewing by mistake is the costly
    error. Evergreen wording (continues until terminated) gives the renewal type ``evergreen``."""
    pos, neg, ever = [], [], []
    for cl in doc.clauses:
        t = doc.prepared[cl.start:cl.end]
        neg += [(cl.start + m.start(), cl.start + m.end()) for m in NEGATIVE_RENEWAL.finditer(t)]
        for m in POSITIVE_RENEWAL.finditer(t):
            s, e = cl.start + m.start(), cl.start + m.end()
            if not any(ns <= s < ne or s <= ns < e for ns, ne in neg):
                pos.append((s, e))
        ever += [(cl.start + m.start(), cl.start + m.end()) for m in EVERGREEN.finditer(t)]
    out: dict[str, FieldValue] = {}
    if not pos and not neg:
        out["auto_renew"] = FieldValue("auto_renew", False, 0.55, method="renewal:no renewal wording")
        return out
    renews = len(pos) > len(neg)
    s, e = (pos if renews else neg)[0]
    conf = 0.95 if (pos and not neg) or (neg and not pos) else 0.65
    out["auto_renew"] = FieldValue("auto_renew", renews, conf, s, e, doc.text[s:e],
                                   f"renewal:{'positive' if renews else 'negative'} wording", doc.page_of(s))
    if renews and ever:
        s, e = ever[0]
        out["renewal_type"] = FieldValue("renewal_type", "evergreen", conf, s, e, doc.text[s:e], "renewal:evergreen",
                                         doc.page_of(s))
    return out


UNCAPPED = re.compile(r"\bunlimited\s+liability|\buncapped|\bliability\s+(?:shall|will)\s+(?:not\s+be\s+limited|be\s+"
                      r"unlimited)|\bno\s+(?:limit|cap)\s+(?:on|to)\s+(?:its\s+|either\s+party's\s+)?liability", re.I)
CAPPED = re.compile(r"\bliability\b.{0,120}?\b(?:shall|will)\s+not\s+exceed|\blimitation\s+of\s+liability\b.{0,200}?"
                    r"(?:not\s+exceed|limited\s+to|cap)|\bliability\b.{0,80}?\blimited\s+to\b|\b(?:aggregate|maximum)\s+"
                    r"liability\b.{0,80}?(?:exceed|limited|cap)|\bliability\s+cap\b", re.I)


def liability(doc: Document) -> FieldValue:
    """``capped`` / ``uncapped`` when the contract says so (DOMAIN.md: uncapped liability is an alert), None
    when it says nothing about limiting liability (a missing cap)."""
    for cl in doc.clauses:
        t = doc.prepared[cl.start:cl.end]
        for pattern, value in ((UNCAPPED, "uncapped"), (CAPPED, "capped")):
            m = pattern.search(t)
            if m:
                s, e = cl.start + m.start(), cl.start + m.end()
                return FieldValue("liability_cap", value, 0.85, s, e, doc.text[s:e], f"liability:{value}",
                                  doc.page_of(s))
    return FieldValue("liability_cap", None, 0.8, method="liability:not stated")


def payment_terms(doc: Document) -> FieldValue | None:
    cands = doc.candidates["payterms"]
    if not cands:
        return None
    scored = sorted(cands, key=lambda c: (-("PAY" in clause_groups(doc, c) or "H:PAY" in clause_groups(doc, c)),
                                          c.start))
    c = scored[0]
    conf = 0.95 if len({x.value for x in cands}) == 1 else 0.7
    return fv(doc, "payment_terms", c, c.value, conf, "payterms:pattern")


# ---- the baseline's roles ------------------------------------------------------------------------------------------
DATE_ROLE = {"SIGN": "agreement_date", "START": "effective_date", "END": "expiration_date"}


DATE_LABEL = re.compile(r"^(?:agreement|contract|signature|execution|order)?\s*dated?$", re.I)


def date_roles(doc: Document) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    for c in doc.candidates["date"]:
        before = left_text(doc, c)
        if DATE_LABEL.match(doc.clauses[c.clause].heading.strip()) and not tokens(before)[1:2]:
            g, dist = "SIGN", 0  # a "Date:" label dates the document itself
        elif re.search(r"(?:\bto|[-\u2013])\s*$", before) and "effective_date" in out:
            g, dist = "END", 0
        else:
            g, dist = nearest_cue(before, DATE_ROLE, doc.clauses[c.clause].heading)
        if g is None:
            continue
        name = DATE_ROLE[g]
        if name not in out:
            out[name] = fv(doc, name, c, c.value, 0.9 if 0 <= dist <= 3 else 0.7, f"date:cue {g.lower()}")
    return out


def duration_roles(doc: Document) -> dict[str, FieldValue]:
    out: dict[str, FieldValue] = {}
    for c in doc.candidates["months"]:
        before = left_text(doc, c, stop_at_previous=False)
        groups = clause_groups(doc, c)
        if {"LIAB", "SURVIVE", "CURE", "AUDIT"} & groups:
            continue
        renew_left = [t for t in tokens(before)[-8:] if "RENEW" in groups_of(t)]
        renew_right = [t for t in tokens(right_text(doc, c, 30))[:2] if "RENEW" in groups_of(t)]
        g, dist = nearest_cue(before, ("TERM",), doc.clauses[c.clause].heading)
        if (renew_left or renew_right or "H:RENEW" in groups) and "renewal_term_months" not in out:
            out["renewal_term_months"] = fv(doc, "renewal_term_months", c, c.value, 0.85, "months:cue renew")
        elif g == "TERM" and "term_months" not in out:
            out["term_months"] = fv(doc, "term_months", c, c.value, 0.85 if dist <= 6 else 0.65, "months:cue term")
    for c in doc.candidates["days"]:
        groups = clause_groups(doc, c)
        if "NOTICE" in groups and ({"RENEW", "END", "TERM"} & groups) and not ({"AUDIT", "PAY", "CURE"} & groups):
            out.setdefault("notice_period_days", fv(doc, "notice_period_days", c, c.value, 0.85, "days:cue notice"))
    return out


def amount_role(doc: Document) -> dict[str, FieldValue]:
    for c in doc.candidates["money"]:
        groups = clause_groups(doc, c)
        if ("PAY" in groups or "H:PAY" in groups) and not ({"LIAB", "INSURE"} & groups):
            out = {"stated_amount": fv(doc, "stated_amount", c, c.value, 0.9, "money:cue fee")}
            basis = c.extra.get("basis")
            if basis:
                s, e = c.extra["basis_span"]
                out["value_basis"] = FieldValue("value_basis", basis, 0.9, s, e, doc.text[s:e], "money:basis words",
                                                doc.page_of(s))
            out["currency"] = fv(doc, "currency", c, c.extra.get("currency", "USD"), 0.9, "money:symbol")
            return out
    return {}


def law_role(doc: Document) -> dict[str, FieldValue]:
    for c in doc.candidates["law"]:
        groups = clause_groups(doc, c)
        if "LAW" in groups or "H:LAW" in groups:
            return {"governing_law": fv(doc, "governing_law", c, c.value, 0.9, "law:cue law")}
    return {}


class RulesExtractor:
    """The baseline: ``extract(pages)`` → :class:`~models.vcm.fields.Extraction`."""

    name = NAME
    version = VERSION

    def __init__(self, msp_names: Sequence[str] = (), date_order: str = "MDY"):
        self.msp_names = tuple(msp_names)
        self.date_order = date_order

    def extract(self, pages: list[str] | str, known_vendors: Sequence[str] = ()) -> Extraction:
        doc = document(pages, self.date_order)
        return self.extract_doc(doc, known_vendors)

    def extract_doc(self, doc: Document, known_vendors: Sequence[str] = ()) -> Extraction:
        fields: dict[str, FieldValue] = {}
        fields.update(pick_parties(doc, self.msp_names, known_vendors))
        fields.update(date_roles(doc))
        fields.update(duration_roles(doc))
        fields.update(renewal(doc))
        fields.update(amount_role(doc))
        fields.update(law_role(doc))
        pt = payment_terms(doc)
        if pt is not None:
            fields["payment_terms"] = pt
        fields["liability_cap"] = liability(doc)
        issues = finish(fields)
        return Extraction(fields, self.version, issues)


def lowered(text: str) -> str:
    return fold(text)
