"""The product catalogue: how a licence is named in each source, what it contains and what it covers.

A licence goes by a part number at the vendor (``SPB``), a display name in the activity report
(``MICROSOFT 365 BUSINESS PREMIUM``), a product code in the PSA (``M365-BP``) and a software title in the RMM
inventory (``Microsoft 365 Apps for business``). The catalogue (``jobs/sli/catalogue.toml``, or the file the
``sli.catalogue`` setting names) maps them onto one key, the part number, and says which standalone products
a suite already contains (double licensing), which cheaper SKU a premium one downgrades to and which
workloads stand in the way, and a list price for a SKU the tenant has no entitlement of. It is data, not
code: an MSP adds its own SKUs and PSA codes there.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

HERE = Path(__file__).resolve().parent


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Product(_Entry):
    sku: Annotated[str, Field(min_length=1)]
    vendor: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    report_names: tuple[str, ...] = ()
    psa_codes: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    installs: tuple[str, ...] = ()
    installs_per_seat: Annotated[int, Field(ge=1, le=100)] = 1
    downgrade_to: str | None = None
    premium_workloads: tuple[str, ...] = ()
    list_price: Annotated[Decimal, Field(ge=0, decimal_places=2)] | None = None


class InstallTitle(_Entry):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    name: Annotated[str, Field(min_length=1)]
    pattern: Annotated[str, Field(min_length=1)]


class Workload(_Entry):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    name: Annotated[str, Field(min_length=1)]
    column: str = ""


class Catalogue(_Entry):
    product: tuple[Product, ...]
    install: tuple[InstallTitle, ...] = ()
    workload: tuple[Workload, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        skus = [p.sku for p in self.product]
        dupes = sorted({s for s in skus if skus.count(s) > 1})
        if dupes:
            raise ValueError(f"SKU(s) listed twice: {dupes}")
        names = [n.upper() for p in self.product for n in p.report_names]
        codes = [c for p in self.product for c in p.psa_codes]
        for what, values in (("report name", names), ("PSA code", codes)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"{what}(s) mapped to more than one SKU: {twice}")
        keys = {i.key for i in self.install}
        workloads = {w.key for w in self.workload}
        for p in self.product:
            for s in (*p.includes, *([p.downgrade_to] if p.downgrade_to else [])):
                if s not in skus:
                    raise ValueError(f"{p.sku}: {s!r} is not a SKU of the catalogue")
            for k in p.installs:
                if k not in keys:
                    raise ValueError(f"{p.sku}: install {k!r} is not an [[install]] key")
            for w in p.premium_workloads:
                if w not in workloads:
                    raise ValueError(f"{p.sku}: premium workload {w!r} is not a [[workload]] key")
            if p.premium_workloads and not p.downgrade_to:
                raise ValueError(f"{p.sku}: premium_workloads need a downgrade_to")
        for i in self.install:
            try:
                re.compile(i.pattern)
            except re.error as exc:
                raise ValueError(f"install {i.key}: bad pattern {i.pattern!r} ({exc})") from None
        return self

    # ---- lookups -------------------------------------------------------------------------------------
    def by_sku(self) -> dict[str, Product]:
        return {p.sku: p for p in self.product}

    def workloads(self) -> dict[str, Workload]:
        return {w.key: w for w in self.workload}

    # ---- as Arrow tables, to join with table expressions -------------------------------------------------
    def report_name_table(self) -> pa.Table:
        """``report_name`` (upper case) → ``sku_part_number``."""
        import pyarrow as pa

        rows = [(n.strip().upper(), p.sku) for p in self.product for n in p.report_names]
        return pa.table({"report_name": pa.array([r[0] for r in rows], pa.string()),
                         "sku_part_number": pa.array([r[1] for r in rows], pa.string())})

    def psa_code_table(self) -> pa.Table:
        """``product_code`` → ``sku_part_number``."""
        import pyarrow as pa

        rows = [(c, p.sku) for p in self.product for c in p.psa_codes]
        return pa.table({"product_code": pa.array([r[0] for r in rows], pa.string()),
                         "sku_part_number": pa.array([r[1] for r in rows], pa.string())})

    def product_table(self) -> pa.Table:
        """``sku_part_number``, ``vendor``, ``product_name``, ``list_price`` (USD / seat / month)."""
        import pyarrow as pa

        return pa.table({
            "sku_part_number": pa.array([p.sku for p in self.product], pa.string()),
            "vendor": pa.array([p.vendor for p in self.product], pa.string()),
            "product_name": pa.array([p.name for p in self.product], pa.string()),
            "list_price": pa.array([p.list_price for p in self.product], pa.decimal128(12, 2)),
        })

    def coverage_table(self) -> pa.Table:
        """``sku_part_number`` → ``install_key`` it covers, ``installs_per_seat``."""
        import pyarrow as pa

        rows = [(p.sku, k, p.installs_per_seat) for p in self.product for k in p.installs]
        return pa.table({"sku_part_number": pa.array([r[0] for r in rows], pa.string()),
                         "install_key": pa.array([r[1] for r in rows], pa.string()),
                         "installs_per_seat": pa.array([r[2] for r in rows], pa.int32())})

    def includes_table(self) -> pa.Table:
        """``suite`` → ``component`` it contains (both part numbers)."""
        import pyarrow as pa

        rows = [(p.sku, c) for p in self.product for c in p.includes]
        return pa.table({"suite": pa.array([r[0] for r in rows], pa.string()),
                         "component": pa.array([r[1] for r in rows], pa.string())})

    def install_table(self) -> pa.Table:
        import pyarrow as pa

        return pa.table({"install_key": pa.array([i.key for i in self.install], pa.string()),
                         "install_name": pa.array([i.name for i in self.install], pa.string())})


def parse(text: str, where: str = "catalogue") -> Catalogue:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML ({exc})") from None
    try:
        return Catalogue.model_validate(doc)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


@cache
def _load(path: str) -> Catalogue:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"SLI product catalogue {p} does not exist (setting sli.catalogue)")
    return parse(p.read_text(encoding="utf-8"), str(p))


def load(name: str = "catalogue.toml") -> Catalogue:
    """The catalogue the ``sli.catalogue`` setting names (relative to ``jobs/sli/`` unless absolute)."""
    p = Path(name)
    return _load(str(p if p.is_absolute() else HERE / p))
