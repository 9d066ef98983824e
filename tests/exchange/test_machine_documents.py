"""The node's own Receipt is valid by construction, so it is sealed without a schema check
(``Node.sign_machine_document(..., schema_valid=True)``): this is the check, kept in the tests.
Every example kind of every agreement, and generated variants of them, once schema-valid, gets
a Receipt that the schema accepts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.exchange import documents
from gateway.model.problems import DocumentRejected
from gateway.xml.convert import json_to_xml
from gateway.xml.header import read_header
from gateway.xml.schemas import default_registry
from gateway.xml.validate import validate
from tests.xml.helpers import load_json, valid_json_files
from tests.xml.strategies import vary_document

_REGISTRY = default_registry()
NOW = datetime(2026, 12, 5, 16, 40, 0, 123456, tzinfo=UTC)


def _receipt_problems(document: dict[str, Any], now: datetime) -> tuple[Any, ...]:
    root = json_to_xml(document, _REGISTRY)
    if validate(root, _REGISTRY):
        return ()  # a received document that fails the schema is refused, never receipted
    header = read_header(root)
    receipt = documents.receipt_json(
        header,
        document_sha256=hashlib.sha256(repr(document).encode()).hexdigest(),
        received_at=now,
        sender=header.recipient,
        now=now + timedelta(microseconds=1),
    )
    return validate(json_to_xml(receipt, _REGISTRY), _REGISTRY)


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
def test_the_receipt_of_every_example_kind_is_schema_valid(path: Any) -> None:
    document = load_json(path)
    assert not validate(json_to_xml(document, _REGISTRY), _REGISTRY), "an example must be valid"
    assert _receipt_problems(document, NOW) == ()


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), now=st.datetimes(timezones=st.just(UTC)))
def test_the_receipt_of_a_generated_valid_document_is_schema_valid(
    path: Any, data: Any, now: datetime
) -> None:
    assume(now.year >= 1900)
    document = vary_document(data.draw, load_json(path))
    try:
        problems = _receipt_problems(document, now)
    except DocumentRejected:  # a variant the converter refuses is never received at all
        assume(False)
        raise
    assert problems == ()
