"""Characters XML 1.0 cannot carry, typed (or pasted) into a console form: the form comes back
with the error next to the field, never a 500 page."""

from __future__ import annotations

import pytest

from tests.web.console.conftest import signed_in

HOSTILE = ["\u0000", "\u0001", "\u001b", "\uffff"]


@pytest.mark.parametrize("char", HOSTILE)
async def test_refusal_text_with_a_control_character_is_shown_at_its_field(
    client, service, seeded, char: str
) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/refuse",
        data={
            "csrf_token": token,
            "Ground": ["contrary-to-law"],
            "Circumstances": f"Обстоя{char}тельства дела.",
            "ConsultationsHeld": "yes",
        },
        allow_redirects=False,
    )
    assert response.status == 422
    html = await response.text()
    assert 'id="error-Circumstances"' in html
    assert f"U+{ord(char):04X}" in html and "XML 1.0" in html
    assert "Обстоятельства дела." in html  # what was typed, without the character
    assert char not in html
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert service.submitted == []


async def test_supreme_courts_refused_part_is_checked(client, service, seeded) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.sc}/refuse",
        data={
            "csrf_token": token,
            "Ground": ["public-order"],
            "Extent": "partial",
            "Reasons": "Причины отказа изложены.",
            "RefusedPart": "Часть\u0008 вторая",
        },
        allow_redirects=False,
    )
    assert response.status == 422
    html = await response.text()
    assert 'id="error-RefusedPart"' in html and "U+0008" in html
    assert service.submitted == []


async def test_action_field_with_a_control_character_is_shown_at_its_field(
    client, service, seeded
) -> None:
    token = await signed_in(client, "operator1")
    response = await client.post(
        f"/conversations/{seeded.cis}/actions/delay",
        data={
            "csrf_token": token,
            "Reason": "Причина\u001b задержки.",
            "ExpectedDate": "2027-01-29",
        },
        allow_redirects=False,
    )
    assert response.status == 422
    html = await response.text()
    assert 'id="error-Reason"' in html and "U+001B" in html
    assert "Причина задержки." in html
    assert service.submitted == []


async def test_purpose_with_a_control_character_is_refused_at_its_field(
    client, service, audit, seeded
) -> None:
    token = await signed_in(client, "reader1")
    response = await client.post(
        f"/conversations/{seeded.secret}/purpose",
        data={
            "csrf_token": token,
            "purpose": "Производство № 1234/26/77001-ИП\u0000 проверка имущества",
            "next": seeded.secret_request,
        },
        allow_redirects=False,
    )
    assert response.status == 400
    html = await response.text()
    assert 'id="error-purpose"' in html and "U+0000" in html
    assert audit.of("console.purpose_stated") == []
