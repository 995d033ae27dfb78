"""The demo's event chain: the root of the longest ``caused_by`` chain in the outbox is what it traces."""

from __future__ import annotations

import pytest

import schemas
from lakehouse.demo import longest_chain_root
from lakehouse.environment import forget_catalogs
from lakehouse.events import outbox_table
from lakehouse.lake import Lake
from tests.platform.test_events import margin_event


def caused(event: dict, by: dict, client: str) -> dict:
    """A copy of ``event`` about another client, caused by ``by`` (its own id, as a handler's would be)."""
    return {**event, "id": f"{client}-{by['id'][:8]}", "subject": f"client:{client}", "caused_by": [by["id"]]}


@pytest.fixture
def lake(settings):
    forget_catalogs()
    return Lake.from_settings(settings)


def test_the_root_of_the_longest_chain_is_traced_and_none_without_a_chain(lake):
    outbox = schemas.get("events.outbox")
    alone, root, other = margin_event("C1"), margin_event("C2"), margin_event("C3")
    lake.replace(outbox, outbox_table([alone, root, other]), run_id="r1")
    assert longest_chain_root(lake) is None  # no event caused another

    step1 = caused(root, root, "C2a")
    step2 = caused(root, step1, "C2b")  # root -> step1 -> step2: two links
    short = caused(other, other, "C3a")  # other -> short: one link
    lake.replace(outbox, outbox_table([alone, root, other, step1, step2, short]), run_id="r2")
    assert longest_chain_root(lake) == root["id"]
