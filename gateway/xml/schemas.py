"""The schema registry: our XSDs, loaded once.

Two engines over the same files, each for what it does best (FACTS.md):

* lxml ``XMLSchema`` (libxml2, the engine behind ``xmllint``) decides validity on the hot path:
  ~60,000 validations per second;
* ``xmlschema`` (pure Python, ~50× slower) explains failures with the field path, converts
  XML → JSON, and is the reference for JSON → XML; the hot path builds from a plan compiled
  once from its components (:attr:`SchemaRegistry.document_plan`, gateway.xml.builder). It
  is confined to the schema folder (``allow='sandbox'``) so a schema can never make it fetch
  anything from the network or elsewhere on disk.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from gateway.model.profiles import (
    COMMON_NAMESPACE,
    ENVELOPE_NAMESPACE,
    PROFILES,
    AgreementProfile,
)
from gateway.schemas import SCHEMA_DIR

if TYPE_CHECKING:  # imported when first compiled: ~0.1 s that `gateway validate` need not pay
    import xmlschema
    from xmlschema.validators import XsdElement

    from gateway.xml.builder import DocumentPlan

ENVELOPE_SCHEMA = "envelope.xsd"

PREFIXES: dict[str, str] = {
    "env": ENVELOPE_NAMESPACE,
    "c": COMMON_NAMESPACE,
    "cis": PROFILES["cis-enforcement"].namespace,
    "sc": PROFILES["ru-kz-supreme-courts"].namespace,
}
"""The prefixes the gateway writes (any prefix is accepted on input)."""

PROFILE_PREFIX: dict[str, str] = {"cis-enforcement": "cis", "ru-kz-supreme-courts": "sc"}

ROOT_NSMAPS: dict[str, dict[str, str]] = {
    agreement: {p: PREFIXES[p] for p in ("env", "c", prefix)}
    for agreement, prefix in PROFILE_PREFIX.items()
}
"""By agreement: the prefixes declared on a document's root, as the reference declares them."""


@dataclass(frozen=True)
class SchemaRegistry:
    """Both compiled forms of ``envelope.xsd`` (which imports common and both profiles).

    Build one per process with :func:`default_registry`; it is read-only and thread-safe for
    validation (lxml's ``XMLSchema`` is compiled once per thread).
    """

    directory: Path = SCHEMA_DIR

    @property
    def lxml_schema(self) -> etree.XMLSchema:
        """libxml2's compiled schema for the calling thread.

        One instance per thread: an ``XMLSchema`` keeps its error log on itself, and libxml2
        validates without the GIL, so per-thread copies let an executor use every core."""
        local = self._local
        schema = getattr(local, "schema", None)
        if schema is None:
            schema = local.schema = self._compile_lxml()
        return schema

    def _compile_lxml(self) -> etree.XMLSchema:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
        )
        document = etree.parse(str(self.directory / ENVELOPE_SCHEMA), parser)
        return etree.XMLSchema(document)

    @cached_property
    def xmlschema(self) -> xmlschema.XMLSchema10:
        """xmlschema's compiled schema, sandboxed to :attr:`directory`."""
        import xmlschema

        return xmlschema.XMLSchema10(
            str(self.directory / ENVELOPE_SCHEMA), allow="sandbox", defuse="always"
        )

    @cached_property
    def document_plan(self) -> DocumentPlan:
        """The JSON → XML plan compiled from :attr:`xmlschema` (gateway.xml.builder)."""
        from gateway.xml.builder import compile_plan  # only when a plan is wanted

        return compile_plan(self.xmlschema, ROOT_NSMAPS)

    @cached_property
    def _local(self) -> threading.local:
        return threading.local()

    def is_valid(self, root: etree._Element) -> bool:
        """The fast check (libxml2). Use :func:`gateway.xml.validate.validate` for reasons."""
        return bool(self.lxml_schema.validate(root))

    def lxml_errors(self, root: etree._Element) -> list[str]:
        """libxml2's own messages, for the rare case xmlschema finds nothing to explain."""
        schema = self.lxml_schema
        schema.validate(root)
        return [f"line {e.line}: {e.message}" for e in schema.error_log]

    def kind_element(self, profile: AgreementProfile, kind: str) -> XsdElement | None:
        """The global element of a kind in the profile's namespace, if declared."""
        return self.xmlschema.maps.elements.get(f"{{{profile.namespace}}}{kind}")

    def envelope_element(self) -> XsdElement:
        return self.xmlschema.maps.elements[f"{{{ENVELOPE_NAMESPACE}}}Envelope"]


_default: SchemaRegistry | None = None
_default_lock = threading.Lock()


def default_registry(*, explain: bool = True) -> SchemaRegistry:
    """The process-wide registry over :data:`SCHEMA_DIR`, compiled on first use.

    ``explain=False`` leaves xmlschema's form (~0.5 s to compile, needed only to explain an
    invalid document or to convert JSON) until something asks for it: what a one-shot
    ``gateway validate`` of a valid document wants. A node compiles both at start."""
    global _default
    with _default_lock:
        if _default is None:
            registry = SchemaRegistry()
            registry.lxml_schema  # noqa: B018  compile now, not on the first message
            _default = registry
        if explain:
            _default.xmlschema  # noqa: B018
            _default.document_plan  # noqa: B018  the JSON → XML plan, before the first message
        return _default
