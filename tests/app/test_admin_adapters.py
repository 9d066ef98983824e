"""Every administrative act of gateway.app.admin records the same thing whichever adapter takes
it: ``gateway holds|tokens`` (the command line), the local API's holds routes and the console's
holds page. For each act, the audit event (kind, actor, subjects, details) and the stored row
are compared, on SQLite and PostgreSQL. The API runs the node's real token check
(LocalNodeService.authenticate_token) over the same store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.app import admin
from gateway.app.context import AppContext, command_line_actor, serving_context
from gateway.exchange.service import Actor, PermissionDenied, Role
from gateway.main import main as gateway
from gateway.store import Store
from gateway.store.tables import api_tokens, legal_holds
from gateway.web.console.sources import admin_holds
from tests.app.surfaces import audit_of, local_api, received_conversation

ADMIN_LABEL = "case-system"


def _token(store: Store, *roles: Role, label: str = ADMIN_LABEL) -> str:
    """A real token in the store, added through the admin service."""
    with_all = AppContext(store, command_line_actor())
    return admin.add_token(with_all, label, [str(r) for r in roles]).token


def _hold_rows(store: Store) -> dict[str, Any]:
    with store.read() as conn:
        return {r.conversation_id: r for r in conn.execute(sa.select(legal_holds))}


def _cli(*argv: str) -> int:
    return gateway(list(argv))


def _same_event_but_for(event: dict[str, Any], cid: str, hold_id: int) -> dict[str, Any]:
    """The event with the ids that must differ between two acts named, for comparison."""
    assert event["subjects"] == {"conversation_id": cid, "hold_id": str(hold_id)}
    return {**event, "subjects": sorted(event["subjects"]), "actor": None}


async def test_placing_a_hold_records_the_same_from_cli_and_api(
    aiohttp_client: Any, store: Store, node_toml: Path
) -> None:
    by_cli, by_api = received_conversation(store), received_conversation(store)
    reason = "определение № А40-1/2027"
    assert _cli("holds", "place", "--config", str(node_toml), "--conversation", by_cli,
                "--reason", reason) == 0  # fmt: skip
    client = await local_api(aiohttp_client, store)
    token = _token(store, Role.ADMINISTRATOR)
    response = await client.post(
        f"/api/v1/conversations/{by_api}/holds",
        json={"reason": reason},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 201, await response.text()
    api_hold = (await response.json())["hold_id"]

    rows = _hold_rows(store)
    cli_row, api_row = rows[by_cli], rows[by_api]
    assert api_row.id == api_hold
    assert cli_row.placed_by == command_line_actor().name
    assert api_row.placed_by == f"token:{ADMIN_LABEL}"
    for row in (cli_row, api_row):
        assert row.reference == reason and row.released_at is None and row.released_by is None

    cli_event, api_event = audit_of(store, "hold.placed")
    assert cli_event["actor"] == cli_row.placed_by and api_event["actor"] == api_row.placed_by
    assert _same_event_but_for(cli_event, by_cli, cli_row.id) == _same_event_but_for(
        api_event, by_api, api_row.id
    )
    assert cli_event["details"] == {"reason": reason}


async def test_releasing_holds_records_the_same_from_cli_and_api(
    aiohttp_client: Any, store: Store, node_toml: Path
) -> None:
    by_cli, by_api = received_conversation(store), received_conversation(store)
    ctx = AppContext(store, command_line_actor())
    held = {cid: admin.place_hold(ctx, cid, "определение № 1") for cid in (by_cli, by_api)}
    lifted = "определение № 2 об отмене"
    assert _cli("holds", "release", "--config", str(node_toml), "--conversation", by_cli,
                "--reason", lifted) == 0  # fmt: skip
    client = await local_api(aiohttp_client, store)
    token = _token(store, Role.ADMINISTRATOR)
    response = await client.post(
        f"/api/v1/conversations/{by_api}/holds/release",
        json={"reason": lifted},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["released"] == [held[by_api]]

    rows = _hold_rows(store)
    assert rows[by_cli].released_by == command_line_actor().name
    assert rows[by_api].released_by == f"token:{ADMIN_LABEL}"
    assert rows[by_cli].released_at is not None and rows[by_api].released_at is not None

    cli_event, api_event = audit_of(store, "hold.released")
    assert cli_event["actor"] == rows[by_cli].released_by
    assert api_event["actor"] == rows[by_api].released_by
    assert _same_event_but_for(cli_event, by_cli, held[by_cli]) == _same_event_but_for(
        api_event, by_api, held[by_api]
    )
    assert api_event["details"] == {"reason": lifted}

    # Nothing left to release: each adapter refuses, and nothing more is recorded.
    assert _cli("holds", "release", "--config", str(node_toml), "--conversation", by_cli,
                "--reason", lifted) == 1  # fmt: skip
    again = await client.post(
        f"/api/v1/conversations/{by_api}/holds/release",
        json={"reason": lifted},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert again.status == 409 and (await again.json())["error"]["code"] == "NO_ACTIVE_HOLD"
    assert len(audit_of(store, "hold.released")) == 2


async def test_listing_holds_is_the_same_from_cli_api_and_console(
    aiohttp_client: Any, store: Store, node_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = AppContext(store, command_line_actor())
    kept, lifted = received_conversation(store), received_conversation(store)
    admin.place_hold(ctx, kept, "определение № 3")
    admin.place_hold(ctx, lifted, "определение № 4")
    admin.release_holds(ctx, lifted, "отменено")
    capsys.readouterr()

    for everything in (False, True):
        flag = ["--all"] if everything else []
        assert _cli("holds", "list", "--config", str(node_toml), *flag) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        by_cli = [(int(f[0]), f[1], f[2]) for f in (line.split("\t") for line in lines)]

        client = await local_api(aiohttp_client, store)
        token = _token(store, Role.ADMINISTRATOR, label=f"lister-{everything}")
        query = "?all=yes" if everything else ""
        response = await client.get(
            f"/api/v1/holds{query}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status == 200, await response.text()
        by_api = [
            (h["hold_id"], h["conversation_id"], h["reference"])
            for h in (await response.json())["holds"]
        ]

        console_source = admin_holds(serving_context(store))
        administrator = Actor("admin1", frozenset({Role.ADMINISTRATOR}))
        by_console = [
            (h.hold_id, h.conversation_id, h.reference)
            for h in await console_source(administrator, not everything)
        ]
        assert by_cli == by_api == by_console
        expected = {kept, lifted} if everything else {kept}
        assert {cid for _, cid, _ in by_cli} == expected


async def test_holds_need_the_administrator_role_everywhere(
    aiohttp_client: Any, store: Store
) -> None:
    cid = received_conversation(store)
    client = await local_api(aiohttp_client, store)
    operator = _token(store, Role.OPERATOR, label="operator-system")
    headers = {"Authorization": f"Bearer {operator}"}
    placed = await client.post(f"/api/v1/conversations/{cid}/holds", json={"reason": "x"},
                               headers=headers)  # fmt: skip
    assert placed.status == 403
    assert (await placed.json())["error"]["role"] == "administrator"
    listed = await client.get("/api/v1/holds", headers=headers)
    assert listed.status == 403
    assert _hold_rows(store) == {}
    denied = audit_of(store, "access.denied")
    assert [e["actor"] for e in denied] == ["token:operator-system"] * 2
    assert denied[0]["subjects"] == {"subject": cid}

    console_source = admin_holds(serving_context(store))
    with pytest.raises(PermissionDenied):
        await console_source(Actor("operator1", frozenset({Role.OPERATOR})), True)


def test_tokens_record_the_same_from_cli_and_the_service(
    store: Store, node_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert _cli("tokens", "add", "--config", str(node_toml), "--label", "by-cli",
                "--role", "operator", "--role", "auditor") == 0  # fmt: skip
    printed = capsys.readouterr().out.strip()
    issued = admin.add_token(
        AppContext(store, command_line_actor()), "by-service", ["auditor", "operator"]
    )
    assert len(printed) == len(issued.token) >= 43

    with store.read() as conn:
        rows = {r.label: r for r in conn.execute(sa.select(api_tokens))}
    cli_row, service_row = rows["by-cli"], rows["by-service"]
    assert cli_row.scopes == service_row.scopes == "auditor,operator"
    assert cli_row.expires_at is None and service_row.expires_at is None
    assert printed.encode() not in cli_row.token_hash  # only a hash is stored

    created = audit_of(store, "token.created")
    assert [e["actor"] for e in created] == [command_line_actor().name] * 2
    assert [e["subjects"] for e in created] == [
        {"token": str(cli_row.id)},
        {"token": str(service_row.id)},
    ]
    assert [e["details"] for e in created] == [
        {"label": label, "roles": "auditor,operator", "expires_at": None}
        for label in ("by-cli", "by-service")
    ]

    assert _cli("tokens", "revoke", "--config", str(node_toml), str(cli_row.id)) == 0
    admin.revoke_token(AppContext(store, command_line_actor()), service_row.id)
    revoked = audit_of(store, "token.revoked")
    assert [(e["actor"], e["subjects"], e["details"]) for e in revoked] == [
        (command_line_actor().name, {"token": str(cli_row.id)}, {}),
        (command_line_actor().name, {"token": str(service_row.id)}, {}),
    ]
    with pytest.raises(admin.TokenRefused):
        admin.revoke_token(AppContext(store, command_line_actor()), service_row.id)
    assert _cli("tokens", "revoke", "--config", str(node_toml), str(cli_row.id)) == 1
    assert len(audit_of(store, "token.revoked")) == 2
