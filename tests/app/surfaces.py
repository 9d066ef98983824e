"""What the adapter-comparison tests of tests/app share: a conversation to act on, the local API
over a store (the node's real token check, LocalNodeService), the audit events an act left, and
the comparison itself (:func:`compare_surfaces`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from gateway.app.context import command_line_actor, serving_context
from gateway.app.passwords import hash_password
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.service import Role
from gateway.main import main as gateway
from gateway.store import Store, conversations
from gateway.store.tables import audit_events
from gateway.web.console import NodeIdentity, StoreUserDirectory, make_console_app, store_audit
from gateway.web.local_api import make_local_api_app
from gateway.web.metrics import GatewayMetrics
from tests.web.console.conftest import (
    CHEAP_HASHER,
    IDENTITY,
    PASSWORD,
    signed_in,
    store_sources,
)


def received_conversation(store: Store) -> str:
    """A CIS request from KZ-MJ received by RU-FSSP, open: something to hold or purge."""
    cid = str(uuid.uuid4())
    with store.transaction() as conn:
        conversations.open_conversation(
            conn,
            conversation_id=cid,
            agreement="cis-enforcement",
            requesting_party="KZ-MJ",
            requested_party="RU-FSSP",
            opening_kind="Request",
            state="received",
            confidential=False,
            deadline=None,
            now=datetime.now(UTC),
        )
    return cid


@dataclass
class Surfaces:
    """One node's three ways in, over one store: its command line (``config``), a test client
    of its local API with a token, and of its console with a signed-in user's CSRF token."""

    store: Store
    config: Path
    api: Any
    api_token: str
    console: Any
    csrf: str

    def cli(self, *argv: str) -> None:
        """``gateway <argv[0]> <argv[1]> --config … <argv[2:]>``, which must succeed."""
        code = gateway([*argv[:2], "--config", str(self.config), *argv[2:]])
        assert code == 0, argv

    async def post_api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.api.post(
            f"/api/v1{path}",
            json=body if body is not None else {},
            headers={"Authorization": f"Bearer {self.api_token}"},
        )
        assert response.status in (200, 201), await response.text()
        return await response.json()

    async def post_console(self, path: str, form: dict[str, Any]) -> None:
        response = await self.console.post(
            path, data={**form, "csrf_token": self.csrf}, allow_redirects=False
        )
        assert response.status in (200, 303), await response.text()


async def local_api(aiohttp_client: Any, store: Store, serving: Any = None) -> Any:
    """A test client of the local API over ``store`` (``serving``: the app context its acts go
    through; by default the store's own)."""
    node = SimpleNamespace(store=store, clock=lambda: datetime.now(UTC))
    service = LocalNodeService(node, None)  # type: ignore[arg-type]
    app = make_local_api_app(service, GatewayMetrics(), serving or serving_context(store))
    return await aiohttp_client(app)


async def signed_in_console(
    aiohttp_client: Any,
    store: Store,
    node_toml: Path,
    service: Any,
    serving: Any,
    user: tuple[str, list[Role]],
    identity: NodeIdentity = IDENTITY,
) -> tuple[Any, str]:
    """A test client of the console over ``store`` (pages read through ``service``, the acts of
    gateway.app through ``serving``) and the CSRF token of ``user`` (name, roles), added to
    the store's users and signed in."""
    username, roles = user
    directory = StoreUserDirectory(store)
    await directory.add(
        username, hash_password(PASSWORD, CHEAP_HASHER), roles, now=datetime.now(UTC)
    )
    console = await aiohttp_client(
        make_console_app(
            service,
            directory,
            secure_cookies=False,
            audit=store_audit(store),
            identity=identity,
            password_hasher=CHEAP_HASHER,
            acts=serving,
            **store_sources(store, node_toml),
        )
    )
    return console, await signed_in(console, username)


def audit_of(store: Store, *kinds: str, after: int = 0) -> list[dict[str, Any]]:
    """The audit events of these kinds recorded after sequence number ``after``, in order."""
    with store.read() as conn:
        rows = conn.execute(
            sa.select(audit_events)
            .where(audit_events.c.seq > after, audit_events.c.kind.in_(kinds))
            .order_by(audit_events.c.seq)
        ).all()
    return [
        {
            "kind": r.kind,
            "actor": r.actor,
            "subjects": json.loads(r.subjects),
            "details": json.loads(r.details),
        }
        for r in rows
    ]


SURFACES = ("cli", "api", "console")


def last_seq(store: Store) -> int:
    """The sequence number of the trail's last event (0: none yet)."""
    with store.read() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(audit_events.c.seq), 0))
            ).scalar_one()
        )


async def compare_surfaces(
    surfaces: Any, case: Any, actors: dict[str, str], distinct_subjects: int = 3
) -> dict[str, Any]:
    """Take ``case``'s act from each surface in turn (``case.setup(surfaces, surface)`` gives
    the subject, ``case.act(surfaces, surface, subject)`` acts) and compare what they recorded:
    each surface the events ``case.kinds``, in order, as its own actor (``actors`` by surface,
    the command line's added); the three alike in codes, subjects' names and details but for
    ``case.varying`` (each there with a value). ``distinct_subjects``: how many different
    subjects the three name (3: each acted on its own, not one event seen three times; 1: the
    node's one). Returns each surface's subject."""
    kinds, varying = case.kinds, case.varying
    actors = {**actors, "cli": command_line_actor().name}
    recorded: dict[str, list[dict[str, Any]]] = {}
    subjects: dict[str, Any] = {}
    for surface in SURFACES:
        subjects[surface] = case.setup(surfaces, surface)
        before = last_seq(surfaces.store)
        await case.act(surfaces, surface, subjects[surface])
        recorded[surface] = audit_of(surfaces.store, *kinds, after=before)

    for surface, events in recorded.items():
        assert [e["kind"] for e in events] == list(kinds), (surface, events)
        assert {e["actor"] for e in events} == {actors[surface]}, (surface, events)
        for key in varying:
            assert any(e["details"].get(key) is not None for e in events), (key, events)

    def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What must be equal: kind, the subjects' names, the details but for the varying
        ones; the subjects' values name this surface's subject."""
        return [
            {
                "kind": e["kind"],
                "subjects": sorted(e["subjects"]),
                "details": {k: v for k, v in e["details"].items() if k not in varying},
            }
            for e in events
        ]

    assert (
        comparable(recorded["cli"])
        == comparable(recorded["api"])
        == comparable(recorded["console"])
    ), recorded
    named = [json.dumps(recorded[s][0]["subjects"], sort_keys=True) for s in SURFACES]
    assert len(set(named)) == distinct_subjects, named
    return subjects
