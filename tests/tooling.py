"""Helpers for tests that need an outside tool (xmllint, xmlsec1, pdfsig, softhsm2, chromium).

On a developer's machine without the tool such a test is skipped with a message that names the
Debian package. In CI (``CI=true``) nothing may be skipped: a missing tool fails the test, so
that a green CI always means every test ran.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(message: str) -> NoReturn:
    """Skip the test for want of something outside it (fail in CI); ``message`` says how to
    get it."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(executable: str, debian_package: str) -> str:
    """Return the tool's path, or skip (fail in CI) naming the package to install."""
    path = shutil.which(executable)
    if path:
        return path
    unavailable(f"{executable} not found: install the Debian package {debian_package}")


def require_file(path: str, debian_package: str) -> str:
    """Like :func:`require_tool` for a file a package installs (a PKCS#11 module, say)."""
    if os.path.exists(path):
        return path
    unavailable(f"{path} not found: install the Debian package {debian_package}")


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM_PIN = "4321"
SOFTHSM_SO_PIN = "87654321"
PREPARED_TOKENS = ("gw-keys", "gw-kek", "gw-rotation", "gw-spare-1", "gw-spare-2")
"""SoftHSM2 reads its token list once per process, when the PKCS#11 module is first loaded:
a token initialised later is invisible to that process. So the suite initialises every token
it needs before any test runs (``tests/conftest.py``) and tests take one by label."""


def prepare_softhsm(root: str) -> bool:
    """Initialise :data:`PREPARED_TOKENS` under ``root`` and point SOFTHSM2_CONF there."""
    import subprocess
    from pathlib import Path

    util = shutil.which("softhsm2-util")
    if util is None or not os.path.exists(SOFTHSM_MODULE):
        return False
    tokens = Path(root) / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = Path(root) / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    for label in PREPARED_TOKENS:
        subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                SOFTHSM_PIN,
                "--so-pin",
                SOFTHSM_SO_PIN,
            ],
            check=True,
            capture_output=True,
        )
    return True


def softhsm_token(label: str) -> tuple[str, str, str]:
    """(module, label, PIN) of a prepared token; skips (fails in CI) without softhsm2."""
    require_file(SOFTHSM_MODULE, "softhsm2")
    require_tool("softhsm2-util", "softhsm2")
    if label not in PREPARED_TOKENS or "SOFTHSM2_CONF" not in os.environ:
        raise AssertionError(f"token {label!r} is not prepared: add it to PREPARED_TOKENS")
    return SOFTHSM_MODULE, label, SOFTHSM_PIN
