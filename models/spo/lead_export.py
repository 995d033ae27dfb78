"""A user's own lead export, read as the lead scorer's fields (``msp model evaluate lead_score``).

A CRM export is not our processed table: a column is "Company Size" or "# Employees" rather than
``employees``, a source is "Referral" or "Web form", a blank or "N/A" or "unknown" means "not filled in",
a number may read "1,200" or "25 staff". :func:`normalise` maps what it recognises onto the scorer's fields
(:data:`ALIASES`, matched on the column name with case, spaces and punctuation ignored), cleans the values
(placeholders become missing, categories are lower-case words joined by ``_`` and common spellings of the
same source or IT model become one value, numbers are read out of text) and keeps every other column as
it is, so nothing the user gave is lost: the trees decide whether it helps.

Nothing here reads a file; :mod:`lakehouse.ml.evaluate` reads the CSV and calls the spec in
:mod:`models.spo.leads`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

#: The scorer's field → column names a CRM export may use for it (compared after :func:`_key`).
ALIASES: dict[str, tuple[str, ...]] = {
    "industry": ("industry", "sector", "vertical", "industry_type", "business_type"),
    "employees": ("employees", "employee_count", "number_of_employees", "num_employees", "no_of_employees",
                  "employees_count", "company_size", "headcount", "staff", "staff_count", "size", "users"),
    "endpoints": ("endpoints", "devices", "device_count", "number_of_devices", "computers", "pcs",
                  "workstations", "endpoint_count", "estimated_endpoints"),
    "locations": ("locations", "sites", "offices", "number_of_locations", "office_count", "branches"),
    "compliance_needs": ("compliance_needs", "compliance", "regulations", "regulatory", "compliance_requirements",
                         "frameworks"),
    "current_it_model": ("current_it_model", "it_model", "current_it", "it_today", "current_it_support",
                         "it_support", "current_provider", "current_setup"),
    "lead_source": ("lead_source", "source", "original_source", "channel", "origin", "how_did_you_hear",
                    "acquisition_channel"),
    "email_opens": ("email_opens", "emails_opened", "opens", "marketing_emails_opened"),
    "email_clicks": ("email_clicks", "emails_clicked", "clicks", "marketing_emails_clicked"),
    "web_visits": ("web_visits", "website_visits", "page_views", "pageviews", "sessions", "number_of_sessions",
                   "visits"),
    "form_submissions": ("form_submissions", "forms", "forms_submitted", "number_of_form_submissions"),
    "calls": ("calls", "number_of_calls", "call_count", "calls_logged"),
    "meetings": ("meetings", "number_of_meetings", "meetings_booked", "meeting_count"),
}
#: Text that means "not filled in" (compared lower-case, stripped). "none" is a real answer for compliance
#: and for the current IT model, so it is not here.
PLACEHOLDERS = frozenset({"", "n/a", "na", "n.a.", "-", "--", "?", "??", "unknown", "unk", "null", "nil", "tbd",
                          "#n/a", "not set", "not specified", "(blank)", "blank", "nan", "missing", "other?"})
#: Spellings of the same category → the value the synthetic CRM (and the scorer) uses.
SYNONYMS: dict[str, dict[str, str]] = {
    "lead_source": {"referred": "referral", "client_referral": "referral", "customer_referral": "referral",
                    "web": "website", "web_form": "website", "inbound": "website", "organic_search": "website",
                    "organic": "website", "site": "website", "trade_show": "event", "conference": "event",
                    "webinar": "event", "events": "event", "partners": "partner", "vendor_referral": "partner",
                    "cold_call": "cold_outreach", "outbound": "cold_outreach", "cold_email": "cold_outreach",
                    "ppc": "paid_search", "google_ads": "paid_search", "adwords": "paid_search",
                    "paid": "paid_search", "sem": "paid_search"},
    "current_it_model": {"inhouse": "in_house", "internal": "in_house", "internal_it": "in_house",
                         "in_house_it": "in_house", "breakfix": "break_fix", "break_fix_it": "break_fix",
                         "ad_hoc": "break_fix", "msp": "other_msp", "another_msp": "other_msp",
                         "competitor": "other_msp", "managed_by_another_msp": "other_msp", "nobody": "none",
                         "no_it": "none", "self": "none", "diy": "none"},
    "compliance_needs": {"no": "none", "n": "none", "no_requirements": "none", "hipaa_compliance": "hipaa",
                         "pci": "pci_dss", "pci_dss": "pci_dss", "soc_2": "soc2"},
}
CATEGORICAL = ("industry", "compliance_needs", "current_it_model", "lead_source")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _key(name: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_").lstrip("#_")


def column_map(columns: Iterable[object]) -> dict[str, str]:
    """The user's column → the scorer's field, for the columns recognised (each field taken once)."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    cols = list(columns)
    for field, names in ALIASES.items():
        for name in names:  # the first alias that matches wins, in the order of ALIASES
            hit = next((c for c in cols if _key(c) == name and str(c) not in out), None)
            if hit is not None and field not in taken:
                out[str(hit)] = field
                taken.add(field)
                break
    return out


def _blank(v: object) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or (
        isinstance(v, str) and v.strip().lower() in PLACEHOLDERS)


def category(values: pd.Series, field: str | None = None) -> pd.Series:
    """Text categories as lower-case words joined by ``_`` (placeholders missing, synonyms merged)."""
    syn = SYNONYMS.get(field or "", {})

    def clean(v):
        if _blank(v):
            return np.nan
        text = re.sub(r"[^a-z0-9|]+", "_", str(v).strip().lower()).strip("_")
        if field == "compliance_needs":  # "HIPAA, PCI" / "HIPAA;PCI" / "HIPAA|PCI" → one list
            parts = [p for p in re.split(r"[|,;/]+|_and_", str(v).strip().lower()) if p.strip()]
            parts = [syn.get(k, k) for k in (re.sub(r"[^a-z0-9]+", "_", p.strip()).strip("_") for p in parts)]
            return "|".join(sorted(set(parts))) if parts else np.nan
        return syn.get(text, text) or np.nan

    return values.astype(object).map(clean)


def number(values: pd.Series) -> pd.Series:
    """Numbers out of text: "1,200" → 1200, "25 staff" → 25, "10-50" → 30 (a range's middle), "yes" → 1."""
    def read(v):
        if _blank(v):
            return np.nan
        if isinstance(v, bool | np.bool_):
            return float(v)
        if isinstance(v, int | float | np.number):
            return float(v)
        text = str(v).strip().lower().replace(",", "")
        if text in ("yes", "true", "y"):
            return 1.0
        if text in ("no", "false", "n"):
            return 0.0
        found = [float(x) for x in _NUMBER.findall(text)]
        if not found:
            return np.nan
        return (found[0] + found[1]) / 2 if len(found) >= 2 and "-" in text[1:] else found[0]

    return pd.to_numeric(values.astype(object).map(read), errors="coerce").astype("float64")


def normalise(frame: pd.DataFrame, features: Iterable[str] | None = None,
              mapping: dict[str, str] | None = None) -> tuple[pd.DataFrame, dict[str, str]]:
    """(the frame with the recognised columns renamed to the scorer's fields and cleaned, the mapping used).

    Only ``features`` (default: every column) are mapped, by ``mapping`` when given (the one found when the
    model was fitted: a frame to score may lack some columns); the other columns are kept unchanged."""
    present = {str(c) for c in frame.columns}
    features = [str(c) for c in (features if features is not None else frame.columns)]
    mapping = column_map(features) if mapping is None else dict(mapping)
    used = {c: f for c, f in mapping.items() if c in present}
    out = frame.rename(columns=used).copy()
    for field in used.values():
        out[field] = category(out[field], field) if field in CATEGORICAL else number(out[field])
    for c in features:
        if c in mapping or c not in present:
            continue
        s = out[c]
        if s.dtype == object or pd.api.types.is_string_dtype(s):  # placeholders in the user's own columns
            out[c] = s.astype(object).map(lambda v: np.nan if _blank(v) else v)
    return out, mapping
