"""Where a node's secrets come from: never NODE.toml itself (docs/operations.md, Secrets).

Each secret (the key passphrase, the PKCS#11 PIN, the database password) is looked for, first
found wins, in

1. the file its ``*_file`` setting names (first line);
2. the systemd credential of its name (:data:`CREDENTIAL_NAMES`) in ``$CREDENTIALS_DIRECTORY``,
   which systemd fills from ``LoadCredential=`` / ``LoadCredentialEncrypted=`` and which only
   the service's processes can read;
3. the environment variable its ``*_env`` setting names.

A file holding a secret that others may read is logged as a warning (``gateway check-config``
fails on it): the secret is as good as published. Standard library only (the configuration
layer uses it).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from gateway.model.problems import ConfigurationError

log = logging.getLogger(__name__)

CREDENTIALS_DIRECTORY = "CREDENTIALS_DIRECTORY"
"""The variable systemd sets for a service with credentials (systemd.exec(5))."""

CREDENTIAL_NAMES = {
    "passphrase": "key-passphrase",
    "pkcs11_pin": "pkcs11-pin",
    "password": "database-password",
}
"""The systemd credential each secret setting is read from (``LoadCredential=NAME:PATH``)."""


class SecretMissing(ConfigurationError):
    """No source holds the secret, or its file is empty or readable by others."""


def find_secret(
    *,
    key: str,
    file: Path | None,
    env: str,
    environ: Mapping[str, str],
) -> tuple[bytes, str] | None:
    """The secret of setting ``key`` (``passphrase``, ``pkcs11_pin``, ``password``) and where it
    came from (for messages, never the secret), or ``None`` when no source holds one."""
    if file is not None:
        return _first_line(file, f"{key}_file {file}"), f"the file {file}"
    directory = environ.get(CREDENTIALS_DIRECTORY, "")
    if directory:
        credential = Path(directory) / CREDENTIAL_NAMES[key]
        if credential.exists():
            return _first_line(credential, f"systemd credential {credential}"), (
                f"the systemd credential {CREDENTIAL_NAMES[key]}"
            )
    value = environ.get(env, "")
    if value:
        return value.encode("utf-8"), f"the variable {env}"
    return None


def sources(key: str, env: str, section: str) -> str:
    """The sources of a secret, for a message saying where to put it."""
    return (
        f"export {env}, set [{section}] {key}_file to a file holding it (mode 0600), or load "
        f"the systemd credential {CREDENTIAL_NAMES[key]!r} (LoadCredential=)"
    )


def _first_line(path: Path, what: str) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise SecretMissing(
            f"{what} does not exist; create it (mode 0600) with the secret on its first line"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s", exposed(path, mode, what))
    lines = data.splitlines()
    if not lines or not lines[0]:
        raise SecretMissing(f"{what} is empty; put the secret on its first line")
    return lines[0]


def exposed(path: Path, mode: int, what: str) -> str:
    return f"{what}: others may read it (mode {stat.S_IMODE(mode):04o}); chmod 600 {path}"


def read_secret_text(
    *, key: str, file: Path | None, env: str, environ: Mapping[str, str] | None, section: str
) -> str:
    """:func:`find_secret` as text, or :class:`SecretMissing` naming every source."""
    found = find_secret(
        key=key, file=file, env=env, environ=os.environ if environ is None else environ
    )
    if found is None:
        raise SecretMissing(f"[{section}] {key}: no secret found; {sources(key, env, section)}")
    return found[0].decode("utf-8")
