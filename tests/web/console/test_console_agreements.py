"""What the agreements ask of the console beyond documents: the "proceeding closed" form (CIS
Art. 9.6) — an operator marks it once, the time read in the console's zone, the date then shows on
the conversation page, refusals are pages that say why, other roles are refused — and the mark of
an urgent request (SC Art. 5.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.web.console import NodeIdentity
from tests.web.console.conftest import MakeClient, signed_in

ALMATY_NODE = NodeIdentity.of("KZ-MJ", "Министерство юстиции Республики Казахстан", "Asia/Almaty")


async def test_an_operator_marks_the_proceeding_closed_in_the_console_zone(
    make_client: MakeClient, service, seeded
) -> None:
    client = await make_client(identity=ALMATY_NODE)
    token = await signed_in(client, "operator1")
    page = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="proceeding-form"' in page and 'id="summary-proceeding-closed"' not in page

    response = await client.post(
        f"/conversations/{seeded.cis}/proceeding-closed",
        data={"csrf_token": token, "closed_at": "2026-11-23T14:30", "reference": "пост. № 7"},
        allow_redirects=False,
    )

    assert response.status == 303, await response.text()
    [(cid, closed_at, reference, who)] = service.closed_proceedings
    assert (cid, reference, who) == (seeded.cis, "пост. № 7", "operator1")
    # 14:30 in Almaty is 09:30 UTC.
    assert closed_at.utcoffset() == timedelta(hours=5)
    assert closed_at.astimezone(UTC) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
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
    assert len(service.closed_proceedings) == 1


async def test_a_form_without_a_time_or_a_reference_is_refused_before_the_node(
    client, service, seeded
) -> None:
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
    assert service.closed_proceedings == []
    assert "close_proceeding" not in service.calls


async def test_only_an_operator_may_mark_it(client, service, seeded) -> None:
    token = await signed_in(client, "auditor1")
    response = await client.post(
        f"/conversations/{seeded.cis}/proceeding-closed",
        data={"csrf_token": token, "closed_at": "2026-11-23T14:30", "reference": "пост. № 7"},
    )
    assert response.status == 403
    assert service.closed_proceedings == []


async def test_an_urgent_request_is_marked_on_its_page(client, service, seeded) -> None:
    """SC Art. 5.2: the request was sent as urgent; its page says so, others do not."""
    service.urgent.add(seeded.sc)
    await signed_in(client, "operator1")
    urgent = await (await client.get(f"/conversations/{seeded.sc}")).text()
    assert 'id="urgent-badge"' in urgent and "срочно" in urgent
    plain = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert 'id="urgent-badge"' not in plain
