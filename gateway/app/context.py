"""One context for every use case: the node's configuration, its store and who acts.

The command line opens it from a configuration file (:meth:`AppContext.open`: a new store gets
the code's schema; one at another revision is refused until ``gateway db upgrade``); the
servers build one over the store they already hold and name each request's actor with
:meth:`AppContext.acting_as`.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import Connection

from gateway.config import NodeConfig
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import KeyStore
from gateway.exchange.service import ACTOR_CHARS, Action, Actor, Role, access_refusal, raise_refusal
from gateway.store import Store, audit, open_current_store
from gateway.store.audit import JsonScalar
from gateway.store.engine import StorageFault, storage_fault
from gateway.store.outbox import Claim as OutboxClaim

__all__ = [
    "ACTOR_CHARS",
    "AppContext",
    "OutboxClaim",
    "StorageFault",
    "Store",
    "command_line_actor",
    "require",
    "serving_context",
    "storage_fault",
]
# Store, StorageFault, storage_fault and OutboxClaim are what the adapters may know of the
# store: a handle to pass on, the two faults a server answers (full, unavailable) and the
# delivery worker's claimed row. Everything else they reach through a use case here.


def _utc_now() -> datetime:
    return datetime.now(UTC)


def command_line_actor() -> Actor:
    """``cli:<login>`` with every role: whoever runs a command on the node's host already holds
    its configuration and database credentials, so a role check could not stop them; the
    audit trail still records who it was."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        login = f"uid-{os.getuid()}"
    return Actor(name=f"cli:{login}"[:ACTOR_CHARS], roles=frozenset(Role))


@dataclass(frozen=True, slots=True)
class AppContext:
    """What a use case runs with. Close it (or use ``with``) when it opened the store."""

    store: Store
    actor: Actor
    config: NodeConfig | None = None
    clock: Callable[[], datetime] = _utc_now
    keys: KeyStore | None = None
    """The node's keys, where the context was built over a running node (the servers): the
    acts that sign (a purge run's report) use them. A command opens its own."""
    kek_ring: KekRing | None = None
    """The node's KEK ring, for the acts that open or seal what is stored under it (a
    disclosure): the running node's own ring in the servers, the one a command loaded."""
    owns_store: bool = field(default=False, repr=False)
    """True when :meth:`open` created the store: :meth:`close` disposes of it."""

    @classmethod
    def open(cls, config_path: Path, actor: Actor | None = None) -> AppContext:
        """Read the node's TOML and open its database (:func:`gateway.store.open_current`).
        ``actor`` defaults to :func:`command_line_actor`."""
        return cls.from_config(NodeConfig.from_toml(config_path), actor)

    @classmethod
    def from_config(cls, config: NodeConfig, actor: Actor | None = None) -> AppContext:
        """As :meth:`open`, for a configuration already read."""
        store = open_current_store(config.database_url)
        return cls(store, actor or command_line_actor(), config, owns_store=True)

    def audit(
        self,
        conn: Connection,
        kind: str,
        *,
        subjects: Mapping[str, str] | None = None,
        details: Mapping[str, JsonScalar] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Append one event of the actor's doing in ``conn``'s transaction, at ``now`` (by
        default the clock's now)."""
        audit.append(
            conn,
            now=self.clock() if now is None else now,
            actor=self.actor.code,
            kind=kind,
            subjects=subjects,
            details=details,
        )

    def acting_as(self, actor: Actor) -> AppContext:
        """The same store and configuration for another actor (one request of a server)."""
        return replace(self, actor=actor, owns_store=False)

    def close(self) -> None:
        if self.owns_store:
            self.store.dispose()

    def __enter__(self) -> AppContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serving_context(
    store: Store,
    config: NodeConfig | None = None,
    clock: Callable[[], datetime] = _utc_now,
    keys: KeyStore | None = None,
    kek_ring: KekRing | None = None,
) -> AppContext:
    """The context of a server over the store it holds. Its own actor has no role, so nothing
    runs for the server itself by mistake: each request names its actor with
    :meth:`AppContext.acting_as`."""
    return AppContext(store, Actor(name="node", roles=frozenset()), config, clock, keys, kek_ring)


def require(ctx: AppContext, action: Action, subject: str = "") -> None:
    """Return if the actor may take ``action``; else record the refusal (``access.denied``)
    and raise it. Every use case of the application layer starts here."""
    raise_refusal(ctx, ctx.actor, access_refusal(ctx.actor, action), subject)
