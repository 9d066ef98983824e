"""What the agreements ask of the console beyond documents: the "proceeding closed" form (CIS
Art. 9.6) — an operator marks it once, the time read in the console's zone, the date then shows on
the conversation page, refusals are pages that say why, other roles are refused — and the mark of
an urgent request (SC Art. 5.2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gateway.store import Store, audit, conversations
from gateway.web.console import NodeIdentity
from tests.web.console.conftest import MakeClient, signed_in

ALMATY_NODE = NodeIdentity.of("KZ-MJ", "Министерство юстиции Республики Казахстан", "Asia/Almaty")


def _closed(store: Store, conversation_id: str) -> tuple[datetime | None, list[Any]]:
    """The stored closing instant and the ``proceeding.closed`` events."""
    with store.read() as conn:
        stored = conversations.get(conn, conversation_id)
        events = [e for e in audit.events(conn) if e.kind == "proceeding.closed"]
    assert stored is not None
    return stored.proceeding_closed_at, events


async def test_an_operator_marks_the_proceeding_closed_in_the_console_zone(
    make_client: MakeClient, service, seeded, node_acts, console_store
) -> None:
    client = await make_client(identity=ALMATY_NODE, acts=node_acts)
    token = await signed_in(client, "operator1")
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="proceeding-form"' in page and 'id="summary-proceeding-closed"' not in page

    response = await client.post(
        f"/conversations/{seeded.cis}/proceeding-closed",
        data={"csrf_token": token, "closed_at": "2026-11-23T14:30", "reference": "пост. № 7"},
        allow_redirects=False,
    )

    assert response.status == 303, await response.text()
    closed_at, [event] = _closed(console_store, seeded.cis)
    # 14:30 in Almaty is 09:30 UTC.
    assert closed_at is not None
    assert closed_at.astimezone(UTC) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert event.actor == "operator1" and event.details["reference"] == "пост. № 7"
    # The node's view now carries the date (LocalNodeService reads it from the store).
    service.conversations[seeded.cis] = replace(
        service.conversations[seeded.cis], proceeding_closed_at=closed_at
    )
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="summary-proceeding-closed"' in page and "23.11.2026" in page
    assert 'id="proceeding-form"' not in page
    assert 'id="flash"' in page and "срок хранения" in page

    again = await client.post(
        f"/conversations/{seeded.cis}/proceeding-closed",
        data={"csrf_token": token, "closed_at": "2026-11-23T15:00", "reference": "пост. № 8"},
    )
    assert again.status == 409
    assert "уже отмечено закрытым" in await again.text()
    assert _closed(console_store, seeded.cis) == (closed_at, [event])


async def test_a_form_without_a_time_or_a_reference_is_refused_before_the_node(
    make_client: MakeClient, seeded, node_acts, console_store
) -> None:
    client = await make_client(acts=node_acts)
    token = await signed_in(client, "operator1")
    for data in (
        {"closed_at": "23.11.2026", "reference": "пост. № 7"},
        {"closed_at": "2026-11-23T14:30", "reference": "  "},
        {"closed_at": "2026-11-23T14:30", "reference": "пост.\x07"},
    ):
        response = await client.post(
            f"/conversations/{seeded.cis}/proceeding-closed", data={"csrf_token": token, **data}
        )
        assert response.status == 400, data
    assert _closed(console_store, seeded.cis) == (None, [])


async def test_only_an_operator_may_mark_it(
    make_client: MakeClient, seeded, node_acts, console_store
) -> None:
    client = await make_client(acts=node_acts)
    token = await signed_in(client, "auditor1")
    response = await client.post(
        f"/conversations/{seeded.cis}/proceeding-closed",
        data={"csrf_token": token, "closed_at": "2026-11-23T14:30", "reference": "пост. № 7"},
    )
    assert response.status == 403
    assert _closed(console_store, seeded.cis) == (None, [])


async def test_an_urgent_request_is_marked_on_its_page(client, service, seeded) -> None:
    """SC Art. 5.2: the request was sent as urgent; its page says so, others do not."""
    service.urgent.add(seeded.sc)
    await signed_in(client, "operator1")
    urgent = await (await client.get(f"/conversations/{seeded.sc}")).text()
    assert 'id="urgent-badge"' in urgent and "срочно" in urgent
    plain = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="urgent-badge"' not in plain
