"""The original by post (CIS Art. 10 para. 1) on a running node, SQLite and PostgreSQL: the local
API, ``gateway originals`` and the console's form record the same thing (the row and the audit
event); refusals name the field and the article and change nothing; the reminder job flags an
original not marked sent within ``[originals] send_within_days`` working days."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
import sqlalchemy as sa

from gateway.app.checks import run_checks
from gateway.app.passwords import hash_password
from gateway.app.scheduled import DEADLINE_REMINDERS, deadline_reminders_body, send_within_days
from gateway.config import NodeConfig
from gateway.demo.play import example
from gateway.demo.setup import DemoWorld
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.service import Role
from gateway.jobs.scheduler import JobRun
from gateway.main import main
from gateway.model.problems import ConfigurationError
from gateway.store.tables import originals
from gateway.web.console import StoreUserDirectory
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import (
    Signer,
    audit_rows,
    create_token,
    header_field,
    node_config,
)
from tests.web.console.conftest import CHEAP_HASHER, PASSWORD

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODE, PEER = "RU-FSSP", "KZ-MJ"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class Running:
    node: Node
    config: Path
    api: str
    headers: dict[str, str]
    console: str

    @property
    def today(self) -> date:
        return datetime.now(ZoneInfo(self.node.config.node.timezone)).date()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgresql"])
async def running(request: pytest.FixtureRequest, world: DemoWorld) -> AsyncIterator[Running]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")("originals")
    config = node_config(world, NODE, f"originals-{request.param}", database_url=database_url)
    runtime = NodeRuntime(Node.from_config(NodeConfig.from_toml(config)))
    await runtime.start(deliver=False, console=True)
    now = datetime.now(UTC)
    token = create_token(runtime.node.store, now)
    users = StoreUserDirectory(runtime.node.store)
    await users.add("clerk", hash_password(PASSWORD, CHEAP_HASHER), (Role.OPERATOR,), now=now)
    try:
        yield Running(
            runtime.node,
            config,
            f"http://127.0.0.1:{runtime.api_port}/api/v1",
            {"Authorization": f"Bearer {token}"},
            f"http://127.0.0.1:{runtime.console_port}",
        )
    finally:
        await runtime.stop()


def _ours(node: Node) -> tuple[str, str]:
    """A request this node sent (stays in the outbox: delivery is off): (message, conversation)."""
    header, _ = node.submit(example("cis-enforcement.Request"), actor="test")
    return header.message_id, header.conversation_id


def _theirs(node: Node, world: DemoWorld) -> str:
    """A request this node received from the peer: its message id."""
    document = Signer.of(world, PEER).document(
        "cis-enforcement.Request", datetime.now(UTC), Recipient=NODE
    )
    assert node.receive(PEER, document).disposition is Disposition.ACCEPTED
    return header_field(document, "MessageId")


def _row(node: Node, message_id: str) -> tuple[Any, ...] | None:
    o = originals.c
    with node.store.read() as conn:
        row = conn.execute(
            sa.select(o.sent_on, o.tracking, o.received_on).where(o.message_id == message_id)
        ).first()
    return tuple(row) if row else None


def _events(node: Node, kind: str, message_id: str) -> list[dict[str, Any]]:
    return [e for e in audit_rows(node.store, kind) if e["subjects"].get("message") == message_id]


# --- the three ways in ------------------------------------------------------------------------


async def _api(run: Running, message_id: str, what: str, body: dict[str, str]) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{run.api}/messages/{message_id}/original/{what}", json=body, headers=run.headers
        ) as response,
    ):
        return response.status, await response.json()


def _cli(run: Running, *argv: str) -> int:
    """``gateway originals …`` in this process, through the one boundary that reports failures."""
    return main(["originals", argv[0], "--config", str(run.config), *argv[1:]])


def _listed(run: Running, capsys: pytest.CaptureFixture[str], conversation_id: str) -> str:
    assert _cli(run, "list", "--conversation", conversation_id) == 0
    return capsys.readouterr().out


async def _console(
    run: Running, conversation_id: str, message_id: str, what: str, form: dict[str, str]
) -> tuple[int, str]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{run.console}/login") as page:
            token = _CSRF.search(await page.text()).group(1)  # type: ignore[union-attr]
        login = {"username": "clerk", "password": PASSWORD, "csrf_token": token}
        async with http.post(f"{run.console}/login", data=login, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{run.console}/conversations/{conversation_id}") as page:
            text = await page.text()
        assert f'id="original-{what}-form-{message_id}"' in text
        token = _CSRF.search(text).group(1)  # type: ignore[union-attr]
        url = f"{run.console}/conversations/{conversation_id}/messages/{message_id}/original/{what}"
        async with http.post(url, data={**form, "csrf_token": token}) as answer:
            return answer.status, await answer.text()


async def test_api_cli_and_console_record_the_same_original(
    running: Running, world: DemoWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    run = running
    today = run.today.isoformat()
    tracking = "EMS RA123456789RU"
    (api_out, _), (cli_out, _), (console_out, console_cid) = (_ours(run.node) for _ in range(3))
    api_in, cli_in = _theirs(run.node, world), _theirs(run.node, world)

    status, answer = await _api(run, api_out, "sent", {"sent_on": today, "tracking": tracking})
    assert status == 200, answer
    assert (answer["sent_on"], answer["tracking"], answer["direction"]) == (today, tracking, "out")
    status, answer = await _api(run, api_in, "received", {"received_on": today})
    assert (status, answer["received_on"], answer["direction"]) == (200, today, "in")

    assert _cli(run, "sent", "--message", cli_out, "--sent-on", today, "--tracking", tracking) == 0
    assert _cli(run, "received", "--message", cli_in, "--received-on", today) == 0
    assert "отправка оригинала отмечена" in capsys.readouterr().out

    form = {"sent_on": today, "tracking": tracking}
    status, page = await _console(run, console_cid, console_out, "sent", form)
    assert status == 200 and f"{today}, {tracking}" in page  # back on the conversation page
    # Ours, once sent: the carrier's delivery can be recorded too, in the same table.
    status, page = await _console(run, console_cid, console_out, "received", {"received_on": today})
    assert status == 200 and f'id="original-received-{console_out}">{today}' in page

    sent_row = (run.today, tracking, None)
    assert [_row(run.node, m) for m in (api_out, cli_out)] == [sent_row, sent_row]
    assert _row(run.node, console_out) == (run.today, tracking, run.today)
    assert [_row(run.node, m) for m in (api_in, cli_in)] == [(None, None, run.today)] * 2
    details = [_events(run.node, "original.sent", m)[0]["details"] for m in (api_out, cli_out)]
    details.append(_events(run.node, "original.sent", console_out)[0]["details"])
    assert details == [{"sent_on": today, "tracking": tracking}] * 3
    received = [_events(run.node, "original.received", m) for m in (api_in, cli_in, console_out)]
    assert [e[0]["details"] for e in received] == [{"received_on": today}] * 3
    # The API's list of the conversation's originals says the same.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{run.api}/conversations/{console_cid}/originals", headers=run.headers) as r,
    ):
        listed = await r.json()
    assert r.status == 200
    assert [
        (o["message_id"], o["direction"], o["sent_on"], o["tracking"], o["received_on"])
        for o in listed["originals"]
    ] == [(console_out, "out", today, tracking, today)]

    # The CLI's list shows what the three recorded, and which of ours still waits to be posted.
    pending, _ = _ours(run.node)
    capsys.readouterr()
    assert _cli(run, "list", "--conversation", console_cid) == 0
    assert f"{console_out} Request (наш, " in capsys.readouterr().out
    assert f"отправлен {today} {tracking}, получен {today}" in _listed(run, capsys, console_cid)
    assert _cli(run, "list", "--not-sent") == 0
    not_sent = capsys.readouterr().out
    assert pending in not_sent and api_out not in not_sent and api_in not in not_sent
    actors = {_events(run.node, "original.sent", m)[0]["actor"] for m in (api_out, console_out)}
    assert actors == {"token:integration", "clerk"}


async def test_refusals_name_the_field_and_the_article_and_change_nothing(
    running: Running, world: DemoWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    run = running
    ours, cid = _ours(run.node)
    theirs = _theirs(run.node, world)
    today, tomorrow = run.today, run.today + timedelta(days=1)
    yesterday = (today - timedelta(days=1)).isoformat()
    cases = [
        (ours, "sent", {"sent_on": tomorrow.isoformat(), "tracking": "RA1"}, 422,
         "ORIGINAL_DATE_IN_FUTURE", "sent_on"),
        (ours, "sent", {"sent_on": yesterday, "tracking": "RA1"}, 422,
         "ORIGINAL_SENT_BEFORE_DOCUMENT", "sent_on"),
        (ours, "sent", {"sent_on": today.isoformat(), "tracking": "RA1; DROP"}, 422,
         "ORIGINAL_TRACKING", "tracking"),
        (ours, "sent", {"sent_on": today.isoformat(), "tracking": "R" * 41}, 422,
         "ORIGINAL_TRACKING", "tracking"),
        (ours, "received", {"received_on": today.isoformat()}, 409,
         "ORIGINAL_NOT_SENT", "sent_on"),
        (theirs, "sent", {"sent_on": today.isoformat(), "tracking": "RA1"}, 422,
         "ORIGINAL_NOT_OURS", "message_id"),
        (theirs, "received", {"received_on": yesterday}, 422,
         "ORIGINAL_RECEIVED_TOO_EARLY", "received_on"),
    ]  # fmt: skip
    for message_id, what, body, status, code, field in cases:
        got, answer = await _api(run, message_id, what, body)
        assert (got, answer["error"]["code"]) == (status, code), (what, body)
        assert (answer["error"]["field"], answer["error"]["article"]) == (field, "CIS Art. 10 ¶1")
    for message_id in (ours, theirs):
        assert _row(run.node, message_id) is None
        assert not _events(run.node, "original.sent", message_id)
        assert not _events(run.node, "original.received", message_id)

    # The same rule through the CLI (exit 1, the field named) and the console (422, in Russian).
    assert _cli(run, "sent", "--message", ours, "--sent-on", yesterday, "--tracking", "RA1") == 1
    assert "sent_on:" in capsys.readouterr().err
    status, page = await _console(
        run, cid, ours, "sent", {"sent_on": tomorrow.isoformat(), "tracking": "RA1"}
    )
    assert status == 422 and "sent_on: дата" in page and "ещё не наступила" in page
    assert _row(run.node, ours) is None

    # Set once: a second mark is refused and the first stands.
    assert (await _api(run, ours, "sent", {"sent_on": today.isoformat(), "tracking": "RA1"}))[
        0
    ] == 200
    got, answer = await _api(run, ours, "sent", {"sent_on": today.isoformat(), "tracking": "RA2"})
    assert (got, answer["error"]["code"]) == (409, "ORIGINAL_ALREADY_SENT")
    assert _row(run.node, ours) == (today, "RA1", None)
    missing = "00000000-0000-4000-8000-000000000000"
    got, answer = await _api(run, missing, "received", {"received_on": today.isoformat()})
    assert (got, answer["error"]["code"]) == (404, "NOT_FOUND")
    assert _cli(run, "received", "--message", missing, "--received-on", today.isoformat()) == 2
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{run.api}/conversations/{missing}/originals", headers=run.headers) as r,
    ):
        assert (r.status, (await r.json())["error"]["code"]) == (404, "NOT_FOUND")


async def test_the_reminder_flags_an_original_not_sent_in_time(running: Running) -> None:
    run = running
    late, _ = _ours(run.node)
    posted, _ = _ours(run.node)
    today = run.today.isoformat()
    assert (await _api(run, posted, "sent", {"sent_on": today, "tracking": "RA7"}))[0] == 200
    config = run.node.config
    body = deadline_reminders_body(config, run.node.store, lambda: run.node.calendars)

    def flagged(at: datetime) -> dict[str, Any]:
        sent = body(JobRun(DEADLINE_REMINDERS, at, at, "test"))
        return {r.original_of: r for r in sent if r.original_of}

    # Created today: 10 working days are not over in a week, and over in five weeks.
    assert late not in flagged(datetime.now(UTC) + timedelta(days=7))
    reminders = flagged(datetime.now(UTC) + timedelta(days=35))
    assert late in reminders and posted not in reminders
    calendar = run.node.calendars.calendar(run.node.calendars.calendar_state_of(NODE))
    assert reminders[late].due == calendar.add_working_days(run.today, 10)
    [event, *_] = _events(run.node, "original.not-sent", late)
    assert event["details"]["send_by"] == reminders[late].due.isoformat()
    assert not _events(run.node, "original.not-sent", posted)

    # A shorter reasonable period is the node's setting; a nonsense one stops the job's start.
    short = dataclasses.replace(
        config, extra={**config.extra, "originals": {"send_within_days": 1}}
    )
    assert send_within_days(short) == 1
    only = frozenset(  # every check of gateway check-config but the originals'
        {"timezone", "data-dir", "trust-files", "crls", "key-files", "secrets", "keys"}
        | {"directory", "database", "clock", "https", "ports"}
    )
    for bad in ({"send_within_days": 0}, {"send_within_days": 61}, {"within": 5}):
        wrong = dataclasses.replace(config, extra={**config.extra, "originals": bad})
        with pytest.raises(ConfigurationError, match="send_within_days"):
            deadline_reminders_body(wrong, run.node.store)
        # gateway check-config says so before the node starts.
        [finding] = run_checks(wrong, skip=only)
        assert (finding.check, finding.state, finding.code) == (
            "originals",
            "FAIL",
            "CONFIG_INVALID",
        )
    [finding] = run_checks(short, skip=only)
    assert (finding.check, finding.state) == ("originals", "ok") and "1 раб. дн." in finding.detail
