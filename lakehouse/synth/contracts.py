"""Vendor contracts as documents: plain text, PDF with a text layer, and scanned PDF (image only).

The same facts (parties, dates, term, renewal, notice, value, payment terms, governing law) are written in
five different legal styles with different date and number formats, so extraction has to understand the
text, not match one template. Scanned documents are rendered into an image with Pillow and embedded in a
PDF without a text layer: they need OCR. Every field value is kept in the truth.
"""

from __future__ import annotations

import io
import textwrap
from datetime import date, timedelta

import numpy as np

from lakehouse.synth import names
from lakehouse.synth.rng import stream

MSP = "North Star IT LLC"
LAWS = ("Colorado", "Delaware", "Texas", "California", "New York")
FORMATS = ("txt", "pdf", "scanned_pdf")
_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def words(n: int) -> str:
    if n < 20:
        return _UNITS[n]
    if n < 100:
        return _TENS[n // 10 - 2] + ("" if n % 10 == 0 else "-" + _UNITS[n % 10])
    return f"{words(n // 100)} hundred" + ("" if n % 100 == 0 else f" {words(n % 100)}")


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def fmt_date(d: date, style: int) -> str:
    return (d.strftime("%B ") + f"{d.day}, {d.year}", f"{d.day} {d.strftime('%B %Y')}", d.strftime("%m/%d/%Y"),
            d.isoformat(), f"the {_ordinal(d.day)} day of {d.strftime('%B')}, {d.year}")[style]


def add_months(d: date, months: int) -> date:
    k = d.month - 1 + months
    y, m = d.year + k // 12, k % 12 + 1
    last = (date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)).day
    return date(y, m, min(d.day, last))


def plan(w) -> list[dict]:
    """The contract documents and the facts each one states."""
    tl, v = w.tl, w.extra["vendors"]
    rng = stream(w.seed, "contracts")
    with_contract = [i for i in range(v.n) if v.contract[i]]
    docs = []
    n = w.scale.contracts
    for j in range(n):
        vi = with_contract[j % len(with_contract)]
        second = j >= len(with_contract)
        term = int(rng.choice([12, 24, 36]))
        if v.anomaly[vi]:
            eff_day = int(v.created[vi]) - int(rng.integers(0, 10))
        elif second:
            eff_day = int(rng.integers(20, max(21, tl.n_days - 30)))
        else:  # in force on the first export day (a few have already expired: archives get uploaded too)
            eff_day = -int(rng.integers(30, term * 30 - 10 if rng.random() < 0.9 else 900))
        effective = tl.start + timedelta(days=eff_day)
        signed = effective - timedelta(days=int(rng.integers(3, 30)))
        auto = bool(rng.random() < 0.65)
        notice = int(rng.choice([30, 60, 90])) if auto else int(rng.choice([0, 30]))
        renewal_term = 12 if auto else 0
        expiration = add_months(effective, term) - timedelta(days=1)
        monthly = int(v.recurring[vi]) or int(max(v.rate[vi], 0.05) * v.median[vi] * 21)
        annual = round(float(monthly * 12 * rng.uniform(0.9, 1.1) / 10000)) * 10000 or 120000
        basis = int(rng.integers(0, 3))  # per year, per month, total over the term
        stated = {0: annual, 1: annual // 12, 2: annual * term // 12}[basis]
        land = max(0, (signed - tl.start).days) if eff_day > 0 else int(rng.integers(0, min(30, tl.n_days)))
        fmt = FORMATS[j % 3] if j < 6 else FORMATS[int(rng.choice(3, p=[0.3, 0.45, 0.25]))]
        slug = names.slug(str(v.name[vi]))
        docs.append({
            "contract_id": f"VC-{j + 1:04d}", "vendor_id": f"VN-{vi + 1:04d}", "vendor_name": str(v.name[vi]),
            "msp_party": MSP, "agreement_date": signed, "effective_date": effective, "term_months": term,
            "expiration_date": expiration, "auto_renew": auto, "renewal_term_months": renewal_term,
            "notice_period_days": notice,
            "opt_out_deadline": expiration - timedelta(days=notice) if auto else None,
            "annual_value_cents": annual, "stated_amount_cents": stated,
            "value_basis": ("per_year", "per_month", "total")[basis], "payment_terms": str(v.payment_terms[vi]),
            "governing_law": LAWS[int(rng.integers(0, len(LAWS)))], "style": j % 5, "format": fmt,
            "land_day": land, "file_name": f"{slug}-contract-{j + 1:04d}.{'txt' if fmt == 'txt' else 'pdf'}",
        })
    return docs


def money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def render_text(doc: dict) -> str:
    """The contract's wording, in one of five styles."""
    s = doc["style"]
    d = lambda x: fmt_date(x, s)  # noqa: E731
    term, notice, rterm = doc["term_months"], doc["notice_period_days"], doc["renewal_term_months"]
    amount = money(doc["stated_amount_cents"])
    per = {"per_year": "per year", "per_month": "per month", "total": "in total over the Initial Term"}[
        doc["value_basis"]]
    v, law, pay = doc["vendor_name"], doc["governing_law"], doc["payment_terms"]
    renew_clause = {
        0: (f"Upon expiration of the Initial Term, this Agreement shall automatically renew for successive "
            f"renewal terms of {words(rterm)} ({rterm}) months each, unless either party gives written notice of "
            f"non-renewal at least {words(notice)} ({notice}) days prior to the end of the then-current term."
            if doc["auto_renew"] else
            "This Agreement shall expire at the end of the Initial Term and shall not renew automatically; any "
            "renewal requires a written amendment signed by both parties."),
        1: (f"Renewal: automatic, {rterm}-month periods. Notice to terminate renewal: {notice} days before the "
            f"end of the current term." if doc["auto_renew"] else "Renewal: none (fixed term). The agreement ends "
                                                                  "on the expiration date."),
        2: (f"THE TERM WILL AUTOMATICALLY EXTEND FOR ADDITIONAL PERIODS OF {rterm} MONTHS UNLESS CUSTOMER NOTIFIES "
            f"PROVIDER IN WRITING NO LESS THAN {notice} DAYS BEFORE THE EXPIRATION OF THE CURRENT TERM."
            if doc["auto_renew"] else "This is a fixed-term agreement with no automatic renewal."),
        3: (f"The Subscription Term renews automatically for one (1) year periods. To cancel, Customer must give "
            f"{words(notice)} ({notice}) days' written notice before the renewal date." if doc["auto_renew"] else
            "The Subscription Term does not renew automatically."),
        4: (f"Evergreen. This agreement continues in {rterm}-month increments after the initial term until "
            f"terminated by either party on {notice} days' prior written notice expiring at the end of a term."
            if doc["auto_renew"] else "Termination: this agreement terminates on the expiration date without "
                                      "further action by either party."),
    }[s]
    if s == 0:
        return "\n\n".join([
            "MASTER SERVICES AGREEMENT",
            f'This Master Services Agreement (the "Agreement") is entered into as of {d(doc["agreement_date"])} '
            f'by and between {v} ("Provider") and {doc["msp_party"]} ("Customer").',
            f'1. TERM. This Agreement shall commence on {d(doc["effective_date"])} (the "Effective Date") and '
            f"shall continue for an initial term of {words(term)} ({term}) months (the \"Initial Term\"), ending "
            f'on {d(doc["expiration_date"])}.',
            f"2. RENEWAL. {renew_clause}",
            f"3. FEES. Customer shall pay Provider fees of {amount} {per}. Invoices are payable {pay.lower()}.",
            f"4. GOVERNING LAW. This Agreement shall be governed by the laws of the State of {law}.",
            "5. LIMITATION OF LIABILITY. Each party's aggregate liability shall not exceed the fees paid in the "
            "twelve (12) months preceding the claim.",
            f"IN WITNESS WHEREOF, the parties have executed this Agreement.\n\n{v}\n\n{doc['msp_party']}",
        ])
    if s == 1:
        return "\n".join([
            f"ORDER FORM / SERVICE SCHEDULE - {v.upper()}", "",
            f"Customer: {doc['msp_party']}", f"Supplier: {v}", f"Order date: {d(doc['agreement_date'])}",
            f"Service start date: {d(doc['effective_date'])}", f"Initial term: {term} months",
            f"End of initial term: {d(doc['expiration_date'])}", renew_clause,
            f"Charges: {amount} {per}", f"Payment terms: {pay}", f"Governing law: {law}", "",
            "This Order Form is subject to the Supplier's standard terms and conditions, which are incorporated "
            "by reference. In case of conflict, this Order Form prevails.",
        ])
    if s == 2:
        return "\n\n".join([
            f"{v.upper()} SUBSCRIPTION AGREEMENT",
            f"This Subscription Agreement is made on {d(doc['agreement_date'])} between {v}, the provider, and "
            f"{doc['msp_party']}, the customer.",
            f"SUBSCRIPTION TERM. The subscription begins on {d(doc['effective_date'])} and runs for {term} months "
            f"through {d(doc['expiration_date'])}.",
            renew_clause,
            f"PRICE AND PAYMENT. The subscription fee is {amount} {per}, invoiced in advance; payment terms: {pay}.",
            f"LAW. The laws of {law} govern this agreement and any dispute arising from it.",
        ])
    if s == 3:
        return "\n\n".join([
            "SOFTWARE LICENSE AND SUPPORT AGREEMENT",
            f"Parties. (a) {v} (\"Licensor\"); (b) {doc['msp_party']} (\"Licensee\"). "
            f"Signed {d(doc['agreement_date'])}.",
            f"Term. The Subscription Term starts {d(doc['effective_date'])} and lasts {term} months; it ends "
            f"{d(doc['expiration_date'])}.",
            renew_clause,
            f"Consideration. Licensee pays {amount} {per}. Payment: {pay}.",
            f"Governing Law and Venue. {law}.",
            "Audit. Licensor may audit Licensee's use of the software once per year on thirty (30) days' notice.",
        ])
    return "\n\n".join([
        "AGREEMENT FOR SERVICES",
        f"THIS AGREEMENT is dated {d(doc['agreement_date'])}.",
        f"BETWEEN: {doc['msp_party']} (the Client) AND {v} (the Contractor).",
        f"COMMENCEMENT: The services commence on {d(doc['effective_date'])}. The initial term is {words(term)} "
        f"months and expires on {d(doc['expiration_date'])}.",
        renew_clause,
        f"COMPENSATION: The Client shall pay the Contractor {amount} {per}, {pay}.",
        f"This agreement is governed by the law of the State of {law}.",
    ])


def _lines(text: str, width: int) -> list[str]:
    out = []
    for para in text.split("\n"):
        out += textwrap.wrap(para, width) or [""]
    return out


def pdf_text(text: str) -> bytes:
    """A PDF with a text layer (reportlab, invariant: no timestamps or random ids, so byte-stable)."""
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1)
    c.setTitle("Contract")
    y = 740
    for line in _lines(text, 92):
        if y < 60:
            c.showPage()
            y = 740
        c.setFont("Helvetica", 10)
        c.drawString(54, y, line)
        y -= 14
    c.showPage()
    c.save()
    return buf.getvalue()


def pdf_scanned(text: str, seed: int) -> bytes:
    """A 'scanned' PDF: each page is an image of the text (slightly grey and tilted), no text layer."""
    from PIL import Image, ImageDraw, ImageFont
    from reportlab import rl_config
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    a85 = rl_config.useA85
    rl_config.useA85 = 0  # keep the JPEG binary: ASCII85 in pure Python takes seconds per page
    try:
        return _scanned(text, seed, Image, ImageDraw, ImageFont, letter, ImageReader, canvas)
    finally:
        rl_config.useA85 = a85


def _scanned(text, seed, Image, ImageDraw, ImageFont, letter, ImageReader, canvas) -> bytes:
    font = ImageFont.load_default(size=24)
    lines = _lines(text, 80)
    per_page = 52
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter, invariant=1)
    rng = np.random.default_rng(seed)
    for p in range(0, len(lines), per_page):
        img = Image.new("L", (1275, 1650), 250)
        draw = ImageDraw.Draw(img)
        y = 90
        for line in lines[p:p + per_page]:
            draw.text((100, y), line, fill=25, font=font)
            y += 29
        img = img.rotate(float(rng.uniform(-0.6, 0.6)), fillcolor=250, resample=Image.BICUBIC)
        noise = rng.integers(0, 12, (1650, 1275), dtype=np.uint8)
        img = Image.fromarray(np.clip(np.asarray(img, dtype=np.int16) - noise, 0, 255).astype(np.uint8))
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=70)
        out.seek(0)
        c.drawImage(ImageReader(out), 0, 0, width=letter[0], height=letter[1])
        c.showPage()
    c.save()
    return buf.getvalue()


def write(w, out, book, say) -> None:
    """Write the documents whose landing day falls in the window; record the truth of all landed by its end."""
    docs = w.extra.get("contracts") or []
    tl = w.tl
    rows = []
    todo = [d for d in docs if out.first_day <= d["land_day"] <= out.last_day]
    for k, doc in enumerate(todo):
        rel = f"vendors/contract_documents/{tl.date_of(doc['land_day']).isoformat()}/{doc['file_name']}"
        out.rows["contract_documents"] += 1
        if not out.write:
            continue
        text = render_text(doc)
        if doc["format"] == "txt":
            data = (text + "\n").encode("utf-8")
        elif doc["format"] == "pdf":
            data = pdf_text(text)
        else:
            data = pdf_scanned(text, w.seed * 7919 + int(doc["contract_id"][3:]))
        out.write_bytes(rel, data)
        say("writing contract documents", k + 1, len(todo))
    for doc in docs:
        if doc["land_day"] > out.last_day:
            continue
        rows.append({
            "file": f"vendors/contract_documents/{tl.date_of(doc['land_day']).isoformat()}/{doc['file_name']}",
            "file_name": doc["file_name"], "format": doc["format"], "contract_id": doc["contract_id"],
            "vendor_id": doc["vendor_id"], "vendor_name": doc["vendor_name"], "msp_party": doc["msp_party"],
            "agreement_date": doc["agreement_date"].isoformat(), "effective_date": doc["effective_date"].isoformat(),
            "term_months": doc["term_months"], "expiration_date": doc["expiration_date"].isoformat(),
            "auto_renew": doc["auto_renew"], "renewal_term_months": doc["renewal_term_months"] or "",
            "notice_period_days": doc["notice_period_days"],
            "opt_out_deadline": doc["opt_out_deadline"].isoformat() if doc["opt_out_deadline"] else "",
            "stated_amount": money(doc["stated_amount_cents"])[1:].replace(",", ""),
            "value_basis": doc["value_basis"], "annual_value": money(doc["annual_value_cents"])[1:].replace(",", ""),
            "currency": "USD", "payment_terms": doc["payment_terms"], "governing_law": doc["governing_law"],
            "wording_style": doc["style"],
        })
    import pandas as pd

    book.tables["contract_documents"] = pd.DataFrame(rows)
