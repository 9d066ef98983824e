"""Property tests: JSON ⇄ XML round trips are exact for generated documents of every kind.

Documents come from tests/xml/strategies.py (variations of the valid examples).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.xml.convert import canonical, json_to_xml, to_bytes, xml_to_json
from gateway.xml.parsing import parse_untrusted
from gateway.xml.validate import validate
from tests.xml.helpers import load_json, valid_json_files
from tests.xml.strategies import vary_document


@pytest.mark.parametrize("path", valid_json_files(), ids=lambda p: p.stem)
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_round_trip_is_exact(path, data: st.DataObject) -> None:
    document = vary_document(data.draw, load_json(path))

    root = json_to_xml(document)
    assert validate(root) == ()
    assert xml_to_json(root) == document  # JSON → XML → JSON

    wire = to_bytes(root)
    received = parse_untrusted(wire)  # through the hardened parser, as a peer's bytes
    back = xml_to_json(received)
    assert back == document
    assert canonical(json_to_xml(back)) == canonical(received)  # XML → JSON → XML
    assert to_bytes(json_to_xml(back)) == wire
