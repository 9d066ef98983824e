from __future__ import annotations

from pathlib import Path

import pytest

from gateway.crypto.keys.keystore import KeyStore
from gateway.demo.pki import DemoPKI
from tests.crypto.helpers import CryptoPKI, build_test_pki, demo_key_stores


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory) -> CryptoPKI:
    """One PKI for the whole run: tests never write into it (they copy what they change)."""
    root: Path = tmp_path_factory.mktemp("pki")
    return build_test_pki(root)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoPKI, dict[str, KeyStore]]:
    """The demo bodies' PKI and key stores (helpers.demo_key_stores), for the tests that sign
    envelopes and hand them to other stacks; nothing writes into it."""
    return demo_key_stores(tmp_path_factory.mktemp("signing-world"))
