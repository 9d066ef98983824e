"""The registry of audit event kinds: the only kinds the trail takes, each described in one line
that fits the kind column; unknown and retired kinds refused before anything is queued."""

from __future__ import annotations

import re

import pytest

from gateway.store import audit
from gateway.store.audit_events import AUDIT_EVENTS, RETIRED_EVENTS, WRITTEN_EVENTS, check_kind
from gateway.store.tables import CODE_LENGTH
from tests.store.conftest import NOW

CODE = re.compile(r"[a-z]+(?:[._-][a-z]+)+")


def test_each_kind_is_a_code_described_in_one_line() -> None:
    assert list(AUDIT_EVENTS) == sorted(AUDIT_EVENTS)
    for kind, text in AUDIT_EVENTS.items():
        assert CODE.fullmatch(kind) and len(kind) <= CODE_LENGTH, kind
        assert text.strip() == text and "\n" not in text and "|" not in text, kind
        assert text[0].isupper() and text.endswith("."), kind


def test_retired_kinds_are_described_and_not_written() -> None:
    assert set(AUDIT_EVENTS) >= RETIRED_EVENTS
    assert set(AUDIT_EVENTS) - RETIRED_EVENTS == WRITTEN_EVENTS
    assert all(AUDIT_EVENTS[k].startswith("Retired:") for k in RETIRED_EVENTS)
    assert not any(AUDIT_EVENTS[k].startswith("Retired") for k in WRITTEN_EVENTS)


def test_an_event_of_an_unknown_kind_is_refused_by_name() -> None:
    for kind in WRITTEN_EVENTS:
        check_kind(kind)
        audit._entry(NOW, "a", kind, None, None)
    with pytest.raises(ValueError, match=r"'message\.read' is not registered"):
        audit._entry(NOW, "a", "message.read", None, None)
    with pytest.raises(ValueError, match=r"'' is not registered"):
        audit._entry(NOW, "a", "", None, None)
    with pytest.raises(ValueError, match=r"'message\.purged' is retired"):
        audit._entry(NOW, "a", "message.purged", None, None)
