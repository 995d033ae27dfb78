"""Text plumbing of contract extraction: clauses, tokens, number words, and the legal vocabulary.

Everything an extractor looks at is a *clause*: a paragraph, a ``Label: value`` line, or a sentence of a
long paragraph. Offsets always index the document text as given (the page texts joined with form feeds),
so every extracted value keeps the exact span it came from.

The vocabulary (:data:`LEXICON`) groups the words contracts use for the same idea: "commence", "begin",
"start" and "effective" all open a term; "expire", "end", "through" and "until" close one. Both extractors
reason over these groups rather than over the words of our own templates, which is what lets them read
wording they have never seen. The groups are domain knowledge written down once, not learned.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

#: Word groups; a token belongs to a group when it starts with one of the stems (``renew`` ~ ``renewal``).
LEXICON: dict[str, tuple[str, ...]] = {
    "START": ("commenc", "begin", "begins", "beginning", "start", "effective", "effect", "from", "inception",
              "launch", "go-live", "activation"),
    "END": ("end", "ends", "ending", "expir", "through", "thru", "until", "till", "terminat", "conclud", "lapse",
            "last", "finish"),
    "SIGN": ("sign", "dated", "made", "entered", "execut", "order", "as of", "accepted", "agreed"),
    "TERM": ("term", "initial", "duration", "period", "subscription", "lasts", "runs", "continue", "remain"),
    "RENEW": ("renew", "extend", "extension", "successive", "additional", "increment", "evergreen", "rollover",
              "roll", "automatic", "auto"),
    "NOTICE": ("notice", "notif", "non-renewal", "nonrenewal", "cancel", "prior", "before", "written", "advance",
               "opt"),
    "PAY": ("fee", "fees", "pay", "payment", "payable", "charge", "price", "consideration", "compensation", "cost",
            "amount", "rate", "invoice", "billed", "bill", "subscription fee", "sum"),
    "LIAB": ("liabil", "liable", "damages", "exceed", "claim", "indemn", "cap", "aggregate"),
    "AUDIT": ("audit", "inspect", "records"),
    "LAW": ("law", "laws", "governed", "governing", "govern", "construed", "jurisdiction"),
    "VENUE": ("venue", "court", "courts", "arbitration", "forum", "located", "address", "office", "principal"),
    "INSURE": ("insurance", "insure", "coverage", "policy"),
    "PARTY": ("between", "party", "parties", "by and between", "and"),
    "NEG": ("not", "no", "never", "without", "none", "non", "neither", "nor", "n't", "cannot", "fixed"),
    "SURVIVE": ("surviv", "confidential", "non-compete", "noncompet", "solicit", "warranty"),
    "CURE": ("cure", "breach", "default", "remedy"),
}
_LEX_INDEX: list[tuple[str, str]] = sorted(((stem, group) for group, stems in LEXICON.items() for stem in stems
                                            if " " not in stem), key=lambda x: -len(x[0]))

MONTHS = {m: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july", "august",
                                      "september", "october", "november", "december"), start=1)}
MONTHS.update({k[:3]: v for k, v in list(MONTHS.items())})
MONTHS["sept"] = 9

_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)} | {
    "a": 1, "an": 1, "single": 1, "half": 0}
#: A number in words: "sixty", "twenty-four", "one hundred twenty", "ninety (90)".
NUMBER_WORD_RE = (r"(?:(?:" + "|".join(_UNITS[1:] + _TENS) + r")(?:[\s-]+(?:hundred|" + "|".join(_UNITS[1:10]) +
                  r"))*(?:\s+(?:and\s+)?(?:" + "|".join(_UNITS[1:] + _TENS) + r")(?:-(?:" + "|".join(_UNITS[1:10]) +
                  r"))?)?)")

US_STATES = ("Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware",
             "District of Columbia", "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas",
             "Kentucky", "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi",
             "Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey", "New Mexico", "New York",
             "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island",
             "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah", "Vermont", "Virginia", "Washington",
             "West Virginia", "Wisconsin", "Wyoming")
OTHER_JURISDICTIONS = ("England and Wales", "England", "Scotland", "Northern Ireland", "Ireland", "Ontario",
                       "British Columbia", "Quebec", "Alberta", "Canada", "Germany", "France", "the Netherlands",
                       "Netherlands", "Switzerland", "Singapore", "Australia", "New South Wales", "Victoria",
                       "New Zealand", "India", "Israel", "Japan", "Sweden", "Denmark", "Norway", "Spain", "Italy",
                       "Luxembourg", "Belgium", "Hong Kong", "the United Kingdom", "United Kingdom")
JURISDICTIONS = US_STATES + OTHER_JURISDICTIONS

#: Roles a contract gives its parties: the supplier side and the buyer side.
VENDOR_ROLES = ("service provider", "provider", "supplier", "vendor", "licensor", "contractor", "consultant",
                "seller", "reseller", "company", "lessor", "landlord", "carrier", "partner", "agency", "firm",
                "insurer", "distributor", "msp vendor")
CUSTOMER_ROLES = ("customer", "client", "licensee", "buyer", "purchaser", "subscriber", "lessee", "tenant",
                  "recipient", "insured", "end user", "user")
CORPORATE_SUFFIX = r"(?:Inc\.?|Incorporated|LLC|L\.L\.C\.|LLP|L\.P\.|LP|Ltd\.?|Limited|Corp\.?|Corporation|Co\.|" \
                   r"Company|GmbH|AG|S\.A\.|SAS|B\.V\.|N\.V\.|PLC|plc|Pty\.? Ltd\.?|PC|P\.C\.)"


@dataclass(frozen=True)
class Clause:
    """A unit of text the extractors reason in: ``[start, end)`` of the document text, and its heading
    (the label before a colon, or the numbered or capitalised title of the paragraph it opens)."""

    start: int
    end: int
    heading: str
    index: int


def normalize_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def fold(text: str) -> str:
    """Lower case without accents, curly quotes as straight ones (for comparisons, not for spans)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"').lower()


def name_key(name: str | None) -> str:
    """A party or vendor name reduced for matching: case, accents, punctuation and spacing ignored."""
    if not name:
        return ""
    return re.sub(r"[^a-z0-9]+", " ", fold(name).replace("&", " and ")).strip()


def prepare(text: str) -> str:
    """The text extractors read, offset-for-offset the same as ``text``: line breaks inside a wrapped
    paragraph become spaces (a PDF text layer or an OCR result breaks lines at the page width), breaks
    that end a paragraph, a heading or a ``Label: value`` line stay."""
    chars = list(text.replace("\r", " "))
    lines = "".join(chars).split("\n")
    pos = 0
    for i, line in enumerate(lines[:-1]):
        pos += len(line)
        nxt = lines[i + 1]
        if (line.strip() and nxt.strip() and not _line_ends_unit(line) and not _line_starts_unit(nxt)
                and not (line.rstrip().endswith((".", ":")) and _TITLE_START.match(nxt))):
            chars[pos] = " "
        pos += 1
    return "".join(chars)


_LABEL = re.compile(r"^\s*(?:\(?[0-9a-zA-Z]{1,3}[.)]\s+)?[A-Z][A-Za-z'/&\- ]{1,40}:\s")
_TITLE_START = re.compile(r"^\s*(?:\d+(?:\.\d+)*[.)]\s+)?(?:[A-Z][A-Za-z'/&\-]*)"
                          r"(?:\s+(?:[A-Z][A-Za-z'/&\-]*|and|of|or|for|the|to)){0,5}[.:]\s")
_HEADING = re.compile(r"^\s*(?:(?:\d+(?:\.\d+)*|[IVX]+|[A-Z])[.)]\s+)?([A-Z][A-Za-z'/&\- ]{1,50}?)[.:]\s")


def _line_ends_unit(line: str) -> bool:
    s = line.rstrip()
    return (len(s) < 45 and not s.endswith((",", "and", "or", "of", "the"))) or s.isupper() or s.endswith(":")


def _line_starts_unit(line: str) -> bool:
    return bool(_LABEL.match(line)) or bool(re.match(r"^\s*(?:\d+(?:\.\d+)*[.)]|\([a-z0-9]{1,3}\)|[-*\u2022])\s",
                                                     line)) or line.strip().isupper()


def clauses(text: str) -> list[Clause]:
    """Paragraphs and lines of ``prepare(text)`` split into sentences; each with its heading."""
    out: list[Clause] = []
    for m in re.finditer(r"[^\n\f]+", text):
        seg_start, seg = m.start(), m.group(0)
        if not seg.strip():
            continue
        heading = ""
        h = _HEADING.match(seg)
        if h and (h.group(1).isupper() or len(h.group(1).split()) <= 5):
            heading = h.group(1).strip()
        for s_start, s_end in _sentences(seg):
            sentence = seg[s_start:s_end].strip()
            if not sentence:
                continue
            out.append(Clause(seg_start + s_start, seg_start + s_end, heading, len(out)))
            if s_start > 0 and _is_title(sentence):
                heading = sentence.rstrip(".:")  # "Governing Law and Venue." titles the sentences after it
    return out


def _is_title(sentence: str) -> bool:
    words = sentence.rstrip(".:").split()
    return (1 <= len(words) <= 6 and sentence.endswith((".", ":"))
            and all(w[0].isupper() or w.lower() in ("and", "of", "or", "for", "the", "to") for w in words))


_ABBREV = re.compile(r"(?:\b(?:Inc|Ltd|Corp|Co|No|St|Mr|Ms|Mrs|Dr|U\.S|L\.L\.C|L\.P|P\.C|Jan|Feb|Mar|Apr|Jun|Jul|Aug|"
                     r"Sep|Sept|Oct|Nov|Dec|vs|etc|e\.g|i\.e|Sec|para|approx)|\b[A-Z])$")


def _sentences(seg: str) -> list[tuple[int, int]]:
    """Sentence bounds inside one line or paragraph: a full stop, ``;`` or ``!``/``?`` followed by a space
    and a capital, a digit or an opening bracket ends one, unless it closes an abbreviation (Inc., Co.)."""
    out, start = [], 0
    for m in re.finditer(r"[.;!?](?=\s+[\"'(\[A-Z0-9])", seg):
        before = seg[start:m.start()]
        if m.group(0) == "." and _ABBREV.search(before):
            continue
        if m.group(0) == "." and re.search(r"(?:^|\s)\(?\d{1,2}$", before) and len(before.strip()) <= 4:
            continue  # "1. TERM." numbering
        out.append((start, m.end()))
        start = m.end()
    out.append((start, len(seg)))
    return out


TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d+(?:[.,]\d+)*|[$€£%]")


def tokens(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(text)]


@cache
def groups_of(token: str) -> tuple[str, ...]:
    """The lexicon groups a lower-case token belongs to."""
    out = []
    for stem, group in _LEX_INDEX:
        if (token == stem or token == stem + "s" or (len(stem) >= 4 and token.startswith(stem))) \
                and group not in out:
            out.append(group)
    if token.endswith("n't"):
        out.append("NEG")
    return tuple(out)


def groups_in(text: str) -> set[str]:
    found: set[str] = set()
    for t in tokens(text):
        found.update(groups_of(t))
    low = fold(text)
    for group, stems in LEXICON.items():
        for stem in stems:
            if " " in stem and stem in low:
                found.add(group)
    return found


def word_number(text: str) -> int | None:
    """``"twenty-four"`` → 24, ``"one hundred twenty"`` → 120, ``"12"`` → 12; None if not a number."""
    t = fold(text).strip()
    if re.fullmatch(r"\d+", t):
        return int(t)
    total, current, seen = 0, 0, False
    for w in re.split(r"[\s-]+", t):
        if w == "and":
            continue
        if w == "hundred":
            current = max(current, 1) * 100
            seen = True
        elif w in NUMBER_WORDS and w not in ("a", "an", "half", "single"):
            current += NUMBER_WORDS[w]
            seen = True
        else:
            return None
    return total + current if seen else None
