"""The console names every audit event in Russian: its labels are the registry's codes, no more
and no fewer (a new kind without a label, or a label of a kind that does not exist, fails)."""

from __future__ import annotations

from gateway.store.audit_events import AUDIT_EVENTS
from gateway.web.console.labels import AUDIT_EVENT_LABELS


def test_every_audit_event_has_a_russian_label_and_no_other() -> None:
    assert set(AUDIT_EVENT_LABELS) - set(AUDIT_EVENTS) == set(), "labels of no registered kind"
    assert set(AUDIT_EVENTS) - set(AUDIT_EVENT_LABELS) == set(), "registered kinds unlabelled"
    assert list(AUDIT_EVENT_LABELS) == sorted(AUDIT_EVENT_LABELS)


def test_the_labels_are_russian_lines() -> None:
    for kind, text in AUDIT_EVENT_LABELS.items():
        assert text.strip() == text and "\n" not in text, kind
        assert any("а" <= c.lower() <= "я" for c in text), kind
