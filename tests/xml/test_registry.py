"""The schema registry: compiled once, usable from executor threads."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from gateway.xml.parsing import parse_untrusted
from gateway.xml.schemas import SCHEMA_DIR, default_registry
from gateway.xml.validate import validate
from tests.xml.helpers import INVALID, VALID


def test_default_registry_is_one_object() -> None:
    assert default_registry() is default_registry()
    assert default_registry().directory == SCHEMA_DIR
    assert (SCHEMA_DIR / "envelope.xsd").is_file()


def test_validation_from_many_threads_gives_the_same_answers() -> None:
    good = parse_untrusted((VALID / "cis-enforcement.Response.xml").read_bytes())
    bad = parse_untrusted((INVALID / "schema-enumeration.xml").read_bytes())

    def check(i: int) -> tuple[str, ...]:
        return tuple(p.code for p in validate(good if i % 2 else bad))

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, range(40)))
    assert results == [() if i % 2 else ("SCHEMA_ENUMERATION",) for i in range(40)]


def test_sandbox_keeps_xmlschema_inside_the_schema_folder() -> None:
    schema = default_registry().xmlschema
    assert schema.maps.settings.allow == "sandbox"
    locations = {s.url for s in schema.maps.iter_schemas() if s.url and s.url.startswith("file:")}
    assert locations
    assert all(SCHEMA_DIR.as_uri() in url for url in locations if "xmlschema" not in url)
