"""A Request's facts for the reservation rules (issuer kind, subjects) are read in one walk:
the same as the XPath searches they replaced, on every example and on generated variants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.model.problems import DocumentRejected
from gateway.rules.agreement import request_facts
from gateway.xml.convert import json_to_xml
from tests.xml.helpers import load_json, valid_json_files
from tests.xml.strategies import vary_document

_ISSUER_KINDS = etree.XPath(".//*[local-name()='Issuer']/*[local-name()='Kind']")
_SUBJECT_ITEMS = etree.XPath(".//*[local-name()='Subject']/*")
_ASSET_KINDS = etree.XPath(".//*[local-name()='Assets']/*[local-name()='Kind']")


def _by_xpath(root: etree._Element) -> tuple[str | None, set[str]]:
    """The reference: what the reservation rules read before (three XPath searches)."""
    body = next((c for c in root.iterchildren() if etree.QName(c).localname == "Body"), None)
    request = body[0] if body is not None and len(body) else None
    if request is None or etree.QName(request).localname != "Request":
        return None, set()
    issuers = _ISSUER_KINDS(request)
    issuer_kind = ((issuers[-1].text or "").strip() or None) if issuers else None
    subjects = {etree.QName(node).localname for node in _SUBJECT_ITEMS(request)}
    subjects.update((node.text or "").strip() for node in _ASSET_KINDS(request))
    return issuer_kind, subjects


REQUESTS = [p for p in valid_json_files() if "Request" in load_json(p)["body"]]


def test_the_examples_include_requests_with_subjects() -> None:
    cis = [p for p in REQUESTS if p.stem.startswith("cis-enforcement.")]
    facts = [request_facts(json_to_xml(load_json(p))) for p in cis]
    assert len(facts) >= 2 and all(kind is not None and subjects for kind, subjects in facts)


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
def test_facts_of_every_example_are_the_xpath_ones(path: Any) -> None:
    root = json_to_xml(load_json(path))
    assert request_facts(root) == _by_xpath(root)


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.stem)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_facts_of_a_generated_request_are_the_xpath_ones(path: Any, data: Any) -> None:
    try:
        root = json_to_xml(vary_document(data.draw, load_json(path)))
    except DocumentRejected:
        assume(False)
        raise
    assert request_facts(root) == _by_xpath(root)
