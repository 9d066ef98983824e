"""The node's own receipts and rejections, built directly with lxml on the hot path, are the
very documents the schema-driven converter builds from the same JSON."""

from __future__ import annotations

import json

import pytest

from gateway.exchange.documents import machine_document_xml
from gateway.schemas import VALID_EXAMPLES_DIR
from gateway.xml.convert import canonical, json_to_xml
from gateway.xml.validate import validate

EXAMPLES = VALID_EXAMPLES_DIR


@pytest.mark.parametrize("agreement", ["cis-enforcement", "ru-kz-supreme-courts"])
@pytest.mark.parametrize("kind", ["Receipt", "Rejection"])
def test_machine_documents_equal_the_converters(agreement: str, kind: str) -> None:
    document = json.loads((EXAMPLES / f"{agreement}.{kind}.json").read_text(encoding="utf-8"))
    fast = machine_document_xml(document)
    assert validate(fast) == ()
    assert canonical(fast) == canonical(json_to_xml(document))


def test_only_machine_kinds_take_the_fast_path() -> None:
    document = json.loads((EXAMPLES / "cis-enforcement.Request.json").read_text(encoding="utf-8"))
    with pytest.raises(ValueError, match="not a machine document"):
        machine_document_xml(document)
