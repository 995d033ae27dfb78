"""The product catalogue: the shipped one is consistent, and a wrong one is refused with a clear message."""

from __future__ import annotations

import pytest

from jobs.sli import catalogue


def test_shipped_catalogue_maps_every_source_name(cat):
    names = dict(zip(*[cat.report_name_table().column(c).to_pylist() for c in ("report_name", "sku_part_number")],
                     strict=True))
    assert names["MICROSOFT 365 BUSINESS PREMIUM"] == "SPB"
    assert names["MICROSOFT 365 BUSINESS STANDARD"] == "O365_BUSINESS_PREMIUM"
    assert names["MICROSOFT TEAMS PHONE STANDARD"] == "MCOEV"
    codes = dict(zip(*[cat.psa_code_table().column(c).to_pylist() for c in ("product_code", "sku_part_number")],
                     strict=True))
    assert (codes["M365-BP"], codes["M365-BS"]) == ("SPB", "O365_BUSINESS_PREMIUM")
    e5 = cat.by_sku()["SPE_E5"]
    assert e5.downgrade_to == "SPE_E3" and "POWER_BI_PRO" in e5.includes and "MCOEV" in e5.includes
    assert cat.by_sku()["SPE_E3"].list_price == 36 and e5.list_price == 57  # DOMAIN.md s. 4 [R58]


@pytest.mark.parametrize(("text", "message"), [
    ('[[product]]\nsku="A"\nvendor="V"\nname="a"\n[[product]]\nsku="A"\nvendor="V"\nname="b"\n', "listed twice"),
    ('[[product]]\nsku="A"\nvendor="V"\nname="a"\nincludes=["B"]\n', "'B' is not a SKU"),
    ('[[product]]\nsku="A"\nvendor="V"\nname="a"\ninstalls=["x"]\n', "install 'x' is not"),
    ('[[product]]\nsku="A"\nvendor="V"\nname="a"\nreport_names=["X"]\n[[product]]\nsku="B"\nvendor="V"\nname="b"\n'
     'report_names=["x"]\n', "more than one SKU"),
    ('[[product]]\nsku="A"\nvendor="V"\nname="a"\npremium_workloads=["w"]\n[[workload]]\nkey="w"\nname="w"\n',
     "need a downgrade_to"),
    ('[[product]]\nsku="A"\nvendor="V"\nname="a"\n[[install]]\nkey="k"\nname="k"\npattern="("\n', "bad pattern"),
    ('[[product]]\nsku="A"\nvendor="V"\nnam="a"\n', "name"),
])
def test_a_wrong_catalogue_is_refused(text, message):
    with pytest.raises(ValueError, match=message):
        catalogue.parse(text, "test.toml")
