"""What the adapter-comparison tests of tests/app share: a conversation to act on, the local API
over a store (the node's real token check, LocalNodeService), and the audit events an act left."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from gateway.app.context import serving_context
from gateway.exchange.local_service import LocalNodeService
from gateway.store import Store, conversations
from gateway.store.tables import audit_events
from gateway.web.local_api import make_local_api_app
from gateway.web.metrics import GatewayMetrics


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


async def local_api(aiohttp_client: Any, store: Store, serving: Any = None) -> Any:
    """A test client of the local API over ``store`` (``serving``: the app context its acts go
    through; by default the store's own)."""
    node = SimpleNamespace(store=store, clock=lambda: datetime.now(UTC))
    service = LocalNodeService(node, None)  # type: ignore[arg-type]
    app = make_local_api_app(service, GatewayMetrics(), serving or serving_context(store))
    return await aiohttp_client(app)


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
