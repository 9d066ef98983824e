"""The XSDs (the single source of truth for document shape) and their examples, shipped as
package data so an installed gateway (wheel, ``pipx``) validates and converts without a checkout.

* ``envelope.xsd`` imports ``common.xsd`` and the two agreement profiles; ``directory.xsd`` is
  the directory of bodies;
* ``examples/valid/`` — one or more complete envelopes per kind, ``AGREEMENT.KIND.json`` and the
  ``.xml`` it converts to; ``examples/invalid/`` — broken documents and the codes they produce.

lxml and xmlschema read schemas from the file system (they follow relative ``schemaLocation``),
so the folder must be a real directory: an unpacked install, which pip and pipx always make.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _folder() -> Path:
    folder = resources.files(__name__)
    if not isinstance(folder, Path):
        # A zip import (zipapp, egg): the XSDs' relative imports cannot be followed there.
        raise ImportError(
            f"gateway.schemas is inside an archive ({folder}); install the gateway unpacked "
            "(pip install, pipx install)"
        )
    return folder


SCHEMA_DIR: Path = _folder()
"""The folder holding the XSDs."""

EXAMPLES_DIR: Path = SCHEMA_DIR / "examples"
"""``valid/`` and ``invalid/`` example documents (docs/documents.md)."""

VALID_EXAMPLES_DIR: Path = EXAMPLES_DIR / "valid"
"""One or more complete envelopes per kind: ``AGREEMENT.KIND.json`` and the ``.xml``."""
