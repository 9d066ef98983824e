from __future__ import annotations

from pathlib import Path

import pytest

from tests.crypto.helpers import CryptoPKI, build_test_pki


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> CryptoPKI:
    """One PKI for the whole run: tests never write into it (they copy what they change)."""
    root: Path = tmp_path_factory.mktemp("pki")
    return build_test_pki(root)
