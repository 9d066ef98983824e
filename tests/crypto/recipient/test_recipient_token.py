"""The PKCS#11 seam with a real token (SoftHSM2): the EC key never leaves it, ECDH runs on it.

The token work runs in a child process (``token_probe.py`` says why). SoftHSM 2.6 implements
RSA-OAEP with SHA-1 only (SHA-256 gives CKR_ARGUMENTS_BAD), so the RSA side of the seam
(:class:`KeyTransportKey`) is shown with a software stand-in in ``test_recipient_roundtrip.py``;
hardware HSMs do OAEP with SHA-256.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.tooling import require_file, require_tool

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "2468"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_file(MODULE, "softhsm2")
    util = require_tool("softhsm2-util", "softhsm2")
    root = tmp_path_factory.mktemp("softhsm-recipient")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
        "log.level = ERROR\n",
        encoding="utf-8",
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        [util, "--init-token", "--free", "--label", "recipient", "--pin", PIN, "--so-pin", "1357"],
        check=True,
        capture_output=True,
        env=env,
    )
    done = subprocess.run(
        [sys.executable, "-m", "tests.crypto.recipient.token_probe", MODULE, "recipient", PIN],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1"])
def test_a_token_key_decrypts_through_the_seam(probe: dict[str, Any], curve: str) -> None:
    assert probe[f"{curve}:is-seam"] is True
    assert probe[f"{curve}:extractable"] is False  # the private key stays on the token
    assert probe[f"{curve}:round-trip"] == "plaintext"


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1"])
def test_a_token_key_refuses_what_is_not_for_it(probe: dict[str, Any], curve: str) -> None:
    assert probe[f"{curve}:for-another"] == "NotARecipient"
    assert probe[f"{curve}:impostor"] == "DecryptionFailed"


def test_a_token_signing_key_without_ecdh_is_a_configuration_error(probe: dict[str, Any]) -> None:
    # gateway.crypto.keys.pkcs11.TokenEcPrivateKey signs but refuses exchange(): decrypt must say
    # so (and name the seam), not blame the document.
    outcome = probe["pkcs11-signing-key"]
    assert outcome.startswith("ConfigurationError: ")
    assert "KeyAgreementKey" in outcome
