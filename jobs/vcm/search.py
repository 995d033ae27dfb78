"""``msp vcm search``: contracts ranked by full-text relevance (BM25) over their text and fields.

An index is built per query in an in-memory DuckDB with its full-text search extension (the
``duckdb-extension-fts`` package ships it, so nothing is downloaded): one entry per contract of the register,
holding the text of its latest version and its fields in words ("auto renew", "notice 60 days", the vendor,
the law, the payment terms), stemmed by Porter, digits kept. The register is small (hundreds of contracts), so
building the index takes milliseconds and it is always as fresh as the lake.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd


def fts_connection():
    import importlib.resources as resources
    from pathlib import Path

    import duckdb

    con = duckdb.connect(":memory:")
    try:
        import duckdb_extension_fts as pkg

        path = Path(str(resources.files(pkg))) / "extensions" / f"v{duckdb.__version__}" / "fts.duckdb_extension"
        con.execute(f"LOAD '{path}'")
    except Exception:
        con.execute("LOAD fts")
    return con


def field_words(r: dict[str, Any]) -> str:
    """A contract's fields as searchable words (so "auto-renew notice 60 days" finds the right ones)."""
    out = []
    if r.get("renewal_type") == "auto_renew":
        out.append("auto renew automatic renewal renews automatically")
    elif r.get("renewal_type") == "evergreen":
        out.append("evergreen auto renew continues until terminated")
    elif r.get("renewal_type") == "fixed_term":
        out.append("fixed term no renewal")
    if r.get("notice_period_days") is not None and not pd.isna(r.get("notice_period_days")):
        out.append(f"notice {int(r['notice_period_days'])} days")
    if r.get("term_months") is not None and not pd.isna(r.get("term_months")):
        out.append(f"term {int(r['term_months'])} months")
    for k in ("vendor_name", "governing_law", "payment_terms", "value_basis", "liability_cap", "status"):
        if r.get(k):
            out.append(str(r[k]).replace("_", " "))
    return " ".join(out)


def search(register: pd.DataFrame, texts: dict[str, str], query: str, limit: int = 10) -> pd.DataFrame:
    """Contracts ranked by BM25 for ``query`` (register rows with ``score`` and a ``snippet``)."""
    if register.empty or not query.strip():
        return register.head(0).assign(score=[], snippet=[])
    docs = pd.DataFrame({"contract_id": register["contract_id"],
                         "body": [f"{field_words(r)}\n{texts.get(r['document_id'], '')}"
                                  for r in register.to_dict("records")]})
    con = fts_connection()
    try:
        con.register("docs_view", docs)
        con.execute("CREATE TABLE docs AS SELECT * FROM docs_view")
        con.execute("PRAGMA create_fts_index('docs', 'contract_id', 'body', stemmer='porter', "
                    "ignore='(\\.|[^a-z0-9])+', overwrite=1)")
        q = re.sub(r"[^A-Za-z0-9 ]+", " ", query)
        hits = con.execute("SELECT contract_id, fts_main_docs.match_bm25(contract_id, ?) AS score FROM docs "
                           "WHERE score IS NOT NULL ORDER BY score DESC, contract_id LIMIT ?", [q, limit]).df()
    finally:
        con.close()
    out = hits.merge(register, on="contract_id", how="left")
    words = [w.lower() for w in q.split() if len(w) > 2]
    out["snippet"] = [snippet(texts.get(d, ""), words) for d in out["document_id"]]
    return out


def snippet(text: str, words: list[str], width: int = 160) -> str:
    """The sentence of the text that holds most of the query's words."""
    best, best_n = "", 0
    for s in re.split(r"(?<=[.;])\s+|\n+", text):
        low = s.lower()
        n = sum(1 for w in words if w[:5] in low)
        if n > best_n:
            best, best_n = s.strip(), n
    return (best[: width - 1] + "\u2026") if len(best) > width else best
