"""Helpers for tests that need an outside tool (xmllint, xmlsec1, pdfsig, softhsm2, chromium).

On a developer's machine without the tool such a test is skipped with a message that names the
Debian package. In CI (``CI=true``) nothing may be skipped: a missing tool fails the test, so
that a green CI always means every test ran.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(executable: str, debian_package: str) -> str:
    """Return the tool's path, or skip (fail in CI) naming the package to install."""
    path = shutil.which(executable)
    if path:
        return path
    message = f"{executable} not found: install the Debian package {debian_package}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")


def require_file(path: str, debian_package: str) -> str:
    """Like :func:`require_tool` for a file a package installs (a PKCS#11 module, say)."""
    if os.path.exists(path):
        return path
    message = f"{path} not found: install the Debian package {debian_package}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")
