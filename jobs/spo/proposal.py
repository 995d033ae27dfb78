"""A proposal: its pricing lines, its executive summary, and its document (Markdown, HTML, PDF).

Content follows DOMAIN.md section 2 ("Proposal generation content" [R35][R36]): an executive summary tied
to the discovery facts (size, compliance needs, how IT is run today), the scope of work with explicit in and
out of scope, pricing lines (per user, per device, per site; recurring and one-time) from the service
catalogue and price list (``spo.catalogue``), the service levels and the terms.

* :func:`build` is pure: the facts of one opportunity in, the proposal record and its lines out. Amounts are
  Decimals: each line is quantity x unit price rounded to the cent, and the totals are the sums of the lines,
  so the document, the ``analytics.proposal_lines`` table and the totals agree to the cent.
* The summary is written by a writer: :class:`TemplateWriter` (the Jinja2 template ``summary.md.j2``,
  default) or :class:`BedrockWriter`, which asks a model on Amazon Bedrock (the Converse API) to rewrite the
  template's draft from the same facts, and falls back to the draft on any error. Numbers in a proposal
  never come from a model: only the summary's wording may.
* :func:`render` fills ``proposal.md.j2`` or ``proposal.html.j2``; :func:`render_pdf` lays the same content
  out with ReportLab.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).with_name("templates")
CENT = Decimal("0.01")
KINDS = ("new_logo", "tm_to_managed", "renewal", "whitespace")
PRIORITY_ORDER = ("critical", "high", "medium", "low")


def cents(v: Any) -> Decimal:
    return Decimal(str(v)).quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class Facts:
    """What is known of the company a proposal is for (discovery facts, and for existing clients what they
    have today)."""

    opportunity_id: str
    kind: str
    company_name: str
    prepared_on: date
    industry: str | None = None
    users: int | None = None
    devices: int | None = None
    servers: int | None = None
    sites: int | None = None
    compliance_needs: str | None = None
    current_it_model: str | None = None
    owner: str | None = None
    client_id: str | None = None
    lead_id: str | None = None
    agreement_id: str | None = None
    #: renewal: the agreement's lines today, as dicts (code, description, unit, quantity, unit_price, source)
    current_lines: tuple[Mapping[str, Any], ...] = ()
    term_months: int | None = None
    #: tm_to_managed: trailing T&M average per month; whitespace: the category to add
    tm_monthly: float | None = None
    category: str | None = None
    agreement_name: str | None = None
    agreement_end: date | None = None
    #: no endpoint count on record: devices estimated as one per user
    devices_estimated: bool = False

    @property
    def compliance(self) -> list[str]:
        text = (self.compliance_needs or "").strip()
        return [] if text.lower() in ("", "none") else [c for c in text.split("|") if c]


def quantity(unit: str, f: Facts) -> int | None:
    """Units of a service for the company (None: unknown, the line is left out)."""
    return {"user": f.users, "device": f.devices, "workstation": f.devices, "server": f.servers,
            "site": f.sites, "network_device": None, "flat": 1}.get(unit)


def _line(no: int, code: str, description: str, category: str, unit: str, billing: str, qty, price,
          source: str) -> dict[str, Any]:
    q, p = cents(qty), cents(price)
    return {"line_no": no, "code": code, "description": description, "category": category, "unit": unit,
            "billing": billing, "quantity": q, "unit_price": p, "amount": (q * p).quantize(CENT, ROUND_HALF_UP),
            "source": source}


def lines_for(f: Facts, cfg) -> list[dict[str, Any]]:
    """The pricing lines of a proposal (see the module docstring)."""
    out: list[dict[str, Any]] = []

    def add(code, description, category, unit, billing, qty, price, source):
        out.append(_line(len(out) + 1, code, description, category, unit, billing, qty, price, source))

    if f.kind == "renewal":
        change = Decimal(str(1 + cfg.renewal_price_change_pct / 100))
        for cur in f.current_lines:
            add(cur["code"], cur["description"], cur.get("category") or "agreement", cur["unit"], "recurring",
                cur["quantity"], cents(Decimal(str(cur["unit_price"])) * change), cur["source"])
        return out
    if f.kind == "whitespace":
        service = next((s for s in cfg.catalogue if s.category == f.category and s.billing == "recurring"), None)
        if service is not None and quantity(service.unit, f):
            add(service.code, service.name, service.category, service.unit, service.billing,
                quantity(service.unit, f), service.price, "catalogue")
        return out
    codes = list(cfg.managed_bundle) + (list(cfg.compliance_bundle) if f.compliance else []) + \
        list(cfg.onboarding_bundle)
    for code in dict.fromkeys(codes):
        s = cfg.service(code)
        q = quantity(s.unit, f)
        if q:
            add(s.code, s.name, s.category, s.unit, s.billing, q, s.price, "catalogue")
    return out


def totals(lines: Sequence[Mapping[str, Any]]) -> dict[str, Decimal]:
    monthly = sum((ln["amount"] for ln in lines if ln["billing"] == "recurring"), Decimal("0.00"))
    one_time = sum((ln["amount"] for ln in lines if ln["billing"] == "one_time"), Decimal("0.00"))
    return {"monthly_total": monthly, "one_time_total": one_time, "first_year_total": monthly * 12 + one_time}


# ---- the executive summary ---------------------------------------------------------------------------------
@cache
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters["money"] = lambda v: f"${Decimal(str(v)):,.2f}"
    env.filters["words"] = lambda v: str(v).replace("_", " ")
    env.filters["minutes"] = _minutes
    return env


def _minutes(m: int) -> str:
    """480 → "8 hours", 4320 → "3 days", 30 → "30 minutes"."""
    if m >= 2880 and m % 1440 == 0:
        return f"{m // 1440} days"
    if m % 60 == 0:
        return f"{m // 60} hour{'s' if m // 60 > 1 else ''}"
    return f"{m} minutes"


def summary_facts(f: Facts, t: Mapping[str, Decimal], cfg, lines: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The flat facts the summary is written from (all a writer may use)."""
    first = lines[0] if lines else {}
    return {"line_quantity": None if not first else int(first["quantity"]), "line_unit": first.get("unit"),
            "line_service": first.get("description"), "msp_name": cfg.msp_name, "company": f.company_name,
            "kind": f.kind, "industry": f.industry,
            "users": f.users, "devices": f.devices, "sites": f.sites, "compliance": f.compliance,
            "it_model": f.current_it_model, "tm_monthly": None if f.tm_monthly is None else cents(f.tm_monthly),
            "category": f.category, "agreement_name": f.agreement_name,
            "agreement_end": None if f.agreement_end is None else f.agreement_end.isoformat(),
            "monthly_total": t["monthly_total"], "one_time_total": t["one_time_total"],
            "term_months": f.term_months or cfg.term_months,
            "price_change_pct": cfg.renewal_price_change_pct}


class TemplateWriter:
    name = "template"

    def write(self, facts: Mapping[str, Any]) -> tuple[str, str]:
        return environment().get_template("summary.md.j2").render(**facts).strip(), self.name


SYSTEM_PROMPT = (
    "You write the executive summary of a managed IT services proposal from a Managed Service Provider to a "
    "small business. Use only the facts given; keep every number and price exactly as given; do not promise "
    "anything the facts do not state. Plain, confident business English, one paragraph of at most 120 words, "
    "no headings, no lists, no greeting."
)


class BedrockWriter:
    """Rewrites the template's draft with a model on Amazon Bedrock (Converse API); the draft on any error."""

    def __init__(self, model_id: str, max_tokens: int, client: Any = None, region: str | None = None):
        from lakehouse.insights import BedrockProvider

        class _Provider(BedrockProvider):
            def request(self, facts, draft):  # the insight request with the proposal's own instructions
                req = super().request(facts, draft)
                req["system"] = [{"text": SYSTEM_PROMPT}]
                return req

        self.provider = _Provider(model_id, max_tokens, region, client)

    @property
    def name(self) -> str:
        return self.provider.name

    def request(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        return self.provider.request(_jsonable(facts), TemplateWriter().write(facts)[0])

    def write(self, facts: Mapping[str, Any]) -> tuple[str, str]:
        insight = self.provider.explain(_jsonable(facts), lambda fx: TemplateWriter().write(facts)[0])
        return insight.text, insight.provider


def writer(cfg, client: Any = None):
    """The writer ``spo.proposal_writer`` names."""
    if cfg.proposal_writer == "bedrock":
        return BedrockWriter(cfg.bedrock_model_id, cfg.bedrock_max_tokens, client)
    return TemplateWriter()


def _jsonable(facts: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(dict(facts), default=str))


# ---- the proposal ---------------------------------------------------------------------------------------------
def proposal_id(opportunity_id: str) -> str:
    return f"PR-{opportunity_id}"


def build(f: Facts, cfg, write=None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the ``analytics.proposals`` record, its ``analytics.proposal_lines``) of one opportunity."""
    if f.kind not in KINDS:
        raise ValueError(f"unknown proposal kind {f.kind!r} (one of {', '.join(KINDS)})")
    lines = lines_for(f, cfg)
    t = totals(lines)
    text, who = (write or TemplateWriter()).write(summary_facts(f, t, cfg, lines))
    pid = proposal_id(f.opportunity_id)
    record = {"proposal_id": pid, "opportunity_id": f.opportunity_id, "proposal_kind": f.kind,
              "client_id": f.client_id, "lead_id": f.lead_id, "agreement_id": f.agreement_id,
              "company_name": f.company_name, "industry": f.industry, "users": f.users, "devices": f.devices,
              "servers": f.servers, "sites": f.sites, "devices_estimated": f.devices_estimated,
              "compliance_needs": f.compliance_needs,
              "current_it_model": f.current_it_model, "owner": f.owner, "prepared_on": f.prepared_on,
              "valid_until": f.prepared_on + timedelta(days=cfg.proposal_valid_days),
              "term_months": f.term_months or cfg.term_months, **t, "line_count": len(lines), "summary": text,
              "writer": who}
    return record, [{"proposal_id": pid, **ln} for ln in lines]


# ---- the document ---------------------------------------------------------------------------------------------
def scope(lines: Sequence[Mapping[str, Any]], cfg) -> tuple[list[dict[str, Any]], list[str]]:
    """(in scope per line's service, out of scope) from the catalogue; a renewal line of a PSA product
    takes the scope of the catalogue service that delivers it."""
    by_code = {s.code: s for s in cfg.catalogue}
    by_product = {p: s for s in cfg.catalogue for p in s.product_codes}
    inside, outside = [], []
    for ln in lines:
        s = by_code.get(ln["code"]) or by_product.get(ln["code"])
        if s is None:
            inside.append({"name": ln["description"], "items": []})
            continue
        inside.append({"name": ln["description"], "items": list(s.in_scope)})
        outside += [o for o in s.out_of_scope if o not in outside]
    outside += [o for o in cfg.general_out_of_scope if o not in outside]
    return inside, outside


def document_context(record: Mapping[str, Any], lines: Sequence[Mapping[str, Any]], cfg) -> dict[str, Any]:
    inside, outside = scope(lines, cfg)
    sla = [{"priority": p, "response": cfg.sla_response_minutes[p], "resolution": cfg.sla_resolution_minutes[p]}
           for p in PRIORITY_ORDER]
    comp = record.get("compliance_needs")
    return {"p": dict(record), "lines": [dict(ln) for ln in sorted(lines, key=lambda x: x["line_no"])],
            "in_scope": inside, "out_of_scope": outside, "sla": sla, "msp_name": cfg.msp_name,
            "net_terms": cfg.net_terms_days, "notice_days": cfg.notice_period_days,
            "compliance": [] if not comp or str(comp).lower() == "none" else str(comp).split("|"),
            "recurring": [ln for ln in lines if ln["billing"] == "recurring"],
            "one_time": [ln for ln in lines if ln["billing"] == "one_time"]}


def render(record: Mapping[str, Any], lines: Sequence[Mapping[str, Any]], cfg, fmt: str = "md") -> str:
    """The proposal document as Markdown (``md``) or HTML (``html``)."""
    if fmt not in ("md", "html"):
        raise ValueError(f"format {fmt!r}: md or html (pdf: render_pdf)")
    if fmt == "html":
        from jinja2 import select_autoescape

        env = environment().overlay(autoescape=select_autoescape(default=True))
        return env.get_template("proposal.html.j2").render(**document_context(record, lines, cfg))
    return environment().get_template("proposal.md.j2").render(**document_context(record, lines, cfg))


def render_pdf(record: Mapping[str, Any], lines: Sequence[Mapping[str, Any]], cfg) -> bytes:
    """The same document as a PDF (ReportLab), from the same context as the templates."""
    import io
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import ListFlowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    c = document_context(record, lines, cfg)
    p = c["p"]
    money = environment().filters["money"]
    st = getSampleStyleSheet()
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, title=f"Proposal {p['proposal_id']}", author=c["msp_name"],
                            leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm, bottomMargin=16 * mm,
                            invariant=1)
    story = [Paragraph(escape(f"Proposal: managed IT services for {p['company_name']}"), st["Title"]),
             Paragraph(escape(f"Prepared by {c['msp_name']} on {p['prepared_on']}, valid until {p['valid_until']}; "
                              f"reference {p['proposal_id']}"), st["Normal"]),
             Spacer(1, 4 * mm), Paragraph("Executive summary", st["Heading2"]), Paragraph(escape(p["summary"]),
                                                                                           st["Normal"]),
             Paragraph("Scope of work", st["Heading2"]), Paragraph("In scope", st["Heading3"])]
    for item in c["in_scope"]:
        story.append(Paragraph(escape(item["name"]), st["Normal"]))
        if item["items"]:
            story.append(ListFlowable([Paragraph(escape(i), st["Normal"]) for i in item["items"]],
                                      bulletType="bullet"))
    story += [Paragraph("Out of scope", st["Heading3"]),
              ListFlowable([Paragraph(escape(o), st["Normal"]) for o in c["out_of_scope"]], bulletType="bullet"),
              Paragraph("Pricing", st["Heading2"])]
    rows = [["#", "Service", "Unit", "Qty", "Unit price", "Billing", "Amount"]]
    rows += [[str(ln["line_no"]), ln["description"], ln["unit"], f"{ln['quantity']:g}", money(ln["unit_price"]),
              "monthly" if ln["billing"] == "recurring" else "one-time", money(ln["amount"])] for ln in c["lines"]]
    rows += [["", "Monthly total", "", "", "", "", money(p["monthly_total"])],
             ["", "One-time total", "", "", "", "", money(p["one_time_total"])],
             ["", "First-year value", "", "", "", "", money(p["first_year_total"])]]
    table = Table(rows, repeatRows=1)
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"), ("ALIGN", (3, 0), (-1, -1), "RIGHT"),
                               ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
                               ("LINEABOVE", (0, -3), (-1, -3), 0.5, colors.grey),
                               ("FONTNAME", (0, -3), (-1, -1), "Helvetica-Bold")]))
    story += [table, Paragraph("Service levels", st["Heading2"])]
    sla = Table([["Priority", "First response", "Resolution"]] +
                [[s["priority"], _minutes(s["response"]), _minutes(s["resolution"])] for s in c["sla"]])
    sla.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold")]))
    story += [sla, Paragraph("Terms", st["Heading2"]),
              ListFlowable([Paragraph(escape(t), st["Normal"]) for t in terms(c)], bulletType="bullet")]
    doc.build(story)
    return buf.getvalue()


def terms(c: Mapping[str, Any]) -> list[str]:
    """The terms, as sentences (the templates say the same)."""
    p = c["p"]
    return [f"Initial term of {p['term_months']} months from the service start date; it renews for the same term "
            f"unless either party gives {c['notice_days']} days' written notice before it ends.",
            f"Recurring services are invoiced monthly in advance, one-time services on completion; payment is due "
            f"{c['net_terms']} days after the invoice date.",
            "Quantities are trued up monthly to the users, devices and sites actually managed, at the unit prices "
            "above.", f"Prices are in USD, excluding taxes, and valid until {p['valid_until']}.",
            "Work outside the scope above is quoted before it starts, at our standard hourly rate."]
