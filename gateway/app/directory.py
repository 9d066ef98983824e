"""The signed directory of bodies as use cases: ``gateway directory import|show``.

Importing verifies the depositary's signature, refuses a version that does not follow the
installed one (:func:`gateway.exchange.directory.check_update`), swaps the file atomically and
audits it once: an import killed between the swap and its event is finished by importing the
same file again (``directory.swapped`` crash point), which writes the event then and only then.

Audit event written here::

    directory.imported   details version
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.app.context import AppContext, require
from gateway.config import NodeConfig
from gateway.crashpoints import crash_point
from gateway.crypto.trust import TrustList
from gateway.exchange.directory import check_update
from gateway.exchange.directory_signing import verify_directory
from gateway.exchange.node import load_directory
from gateway.exchange.service import Action
from gateway.model.directory import Directory
from gateway.model.problems import ConfigurationError
from gateway.store import audit

__all__ = ["DirectoryImported", "current_directory", "import_directory"]

IMPORTED = "directory.imported"


@dataclass(frozen=True, slots=True)
class DirectoryImported:
    version: int
    path: Path
    already: bool
    """The same file was installed already (nothing swapped; the event written if missing)."""


def current_directory(config: NodeConfig, at: datetime) -> Directory:
    """The installed directory, its signature checked (``gateway directory show``)."""
    return load_directory(config, at=at)


def import_directory(ctx: AppContext, data: bytes) -> DirectoryImported:
    """Verify ``data`` as the depositary's signed directory and install it as the node's."""
    require(ctx, Action.IMPORT_DIRECTORY)
    config = ctx.config
    if (
        config is None
        or config.trust.depositary_ca_file is None
        or config.trust.directory_file is None
    ):
        where = config.path if config is not None else "the node's configuration"
        raise ConfigurationError(f"{where}: [trust] needs depositary_ca_file and directory_file")
    now = ctx.clock()
    trust = TrustList.from_pem_files(config.trust.depositary_ca_file, require_revocation=False)
    new = verify_directory(data, trust, at=now)
    target = config.trust.directory_file
    current = load_directory(config, at=now) if target.exists() else None
    if current is not None and current.version == new.version and target.read_bytes() == data:
        # Installed already (demo nodes sharing one directory file, a repeated import).
        _record_once(ctx, new.version, now)
        return DirectoryImported(new.version, target, already=True)
    check_update(current, new, now=now)
    temporary = target.with_suffix(".new")
    temporary.write_bytes(data)
    crash_point("directory.written")
    temporary.replace(target)  # atomic: a node reading it sees the old or the new, never half
    crash_point("directory.swapped")
    _record_once(ctx, new.version, now)
    return DirectoryImported(new.version, target, already=False)


def _record_once(ctx: AppContext, version: int, now: datetime) -> None:
    """Audit the installation of ``version``, once: an import repeated after a crash adds no
    second event."""
    with ctx.store.transaction() as conn:
        seen: set[object] = set()
        after = 0
        while found := audit.events(conn, after, kinds=(IMPORTED,)):
            seen |= {event.details.get("version") for event in found}
            after = found[-1].seq
        if version not in seen:
            ctx.audit(
                conn,
                IMPORTED,
                details={"version": version},
                now=now,
            )
