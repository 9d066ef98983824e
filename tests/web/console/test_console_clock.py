"""The console's dates come from the one legal clock (gateway.rules.clock): days left by the
calendars it is given (the node's, with the configured and published days off), the line saying
which calendar, zone and pauses fixed the due date, and the late-answer flag."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from gateway.exchange.service import LateFlag
from gateway.rules.clock import Calendars
from tests.web.console.conftest import signed_in


async def test_days_left_count_the_calendars_days_off(make_client, seeded) -> None:
    # Monday 23 Nov 2026; the CIS request is due Wednesday 25 in KZ: 2 working days left, 1
    # when KZ's calendar (configured or published) makes Tuesday 24 a day off.
    client = await make_client(
        calendars=lambda: Calendars.build(extra_days_off={"KZ": ["2026-11-24"]})
    )
    await signed_in(client, "operator1")
    html = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert "осталось 1 раб. дн." in html


async def test_the_conversation_shows_why_its_date_and_a_late_answer(
    client, service, seeded
) -> None:
    stored = service.messages[seeded.cis_request]
    service.messages[seeded.cis_request] = replace(
        stored,
        summary=replace(
            stored.summary, late=LateFlag(date(2026, 11, 2), date(2026, 11, 6), 4, True)
        ),
    )
    why = "CIS Art. 12: получен 2026-10-01 (Asia/Almaty); календарь KZ (holidays)"
    original = service.conversation

    async def with_why(conversation_id, **kwargs):  # type: ignore[no-untyped-def]
        return replace(await original(conversation_id, **kwargs), deadline_why=why)

    service.conversation = with_why
    await signed_in(client, "operator1")
    html = await (await client.get(f"/conversations/{seeded.cis}")).text()
    assert f'<small id="summary-deadline-why">{why}</small>' in html
    assert f'id="late-{seeded.cis_request}"' in html
    assert "с опозданием на 4 раб. дн." in html
