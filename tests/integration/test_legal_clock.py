"""The one legal clock through real nodes (CIS Art. 12; SC Art. 6.1): the day of receipt is the
requested party's local date; a requested term already past is refused at submit and at
receipt; a late answer is accepted but flagged on both sides, on SQLite and PostgreSQL.

RU-FSSP and KZ-MJ run in this process with pinned clocks inside the demo world's validity
window (its certificates and CRLs were issued two days ago and are valid five days on).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from gateway.config import NodeConfig
from gateway.demo.play import example, reply
from gateway.demo.setup import DemoWorld
from gateway.exchange import local_service
from gateway.exchange.node import Node
from gateway.exchange.receiving import Disposition
from gateway.exchange.sending import Answer, DeliveryResult
from gateway.model.directory import PublishedCalendar
from gateway.model.problems import DocumentRejected
from gateway.rules.calendars import calendar_for
from gateway.store.tables import conversations, late_answers
from gateway.web.console.context import CONTEXT
from gateway.web.metrics import GatewayMetrics, LateSide
from gateway.web.runtime import NodeRuntime
from tests.integration.exchange_world import OPERATOR, Signer, audit_rows, node_config

ALMATY = ZoneInfo("Asia/Almaty")
KZ = calendar_for("KZ")


@contextmanager
def pair(world: DemoWorld, tag: str, urls: tuple[str, str] = ("", "")) -> Iterator[list[Node]]:
    nodes = [
        Node.from_config(NodeConfig.from_toml(node_config(world, body, tag, database_url=url)))
        for body, url in zip(("RU-FSSP", "KZ-MJ"), urls, strict=True)
    ]
    try:
        yield nodes
    finally:
        for node in nodes:
            node.close()


def _pin(at: datetime, *nodes: Node) -> None:
    for node in nodes:
        node.clock = lambda at=at: at


def deliver(sender: Node, receiver: Node, message_id: str) -> Any:
    """One delivery by hand: the receiver's answer recorded by the sender."""
    (claim,) = [c for c in sender.claim_due("w") if c.message_id == message_id]
    outgoing = sender.outgoing(claim)
    answer = receiver.receive(sender.body_id, outgoing.wire)
    assert answer.disposition is Disposition.ACCEPTED, answer.body[:300]
    result = sender.record_answer(claim, outgoing.signed, answer.body, Answer.RECEIPT)
    assert result.outcome is DeliveryResult.DELIVERED
    return answer


def _deadline(node: Node, conversation_id: str) -> date | None:
    with node.store.read() as conn:
        return conn.execute(
            sa.select(conversations.c.deadline).where(
                conversations.c.conversation_id == conversation_id
            )
        ).scalar_one()


def _window() -> tuple[datetime, datetime]:
    """Instants the demo world's certificates and CRLs cover (see the conftest)."""
    now = datetime.now(UTC)
    return now - timedelta(days=1, hours=12), now + timedelta(days=4)


def _night_receipt() -> datetime:
    """01:30 in Almaty (20:30 UTC the day before) inside the window, on an Almaty date that is
    a working day: then the UTC date would give an earlier due date."""
    start, end = _window()
    day = start.astimezone(ALMATY).date()
    while True:
        at = datetime.combine(day, time(1, 30), ALMATY).astimezone(UTC)
        if start <= at <= end - timedelta(hours=1) and KZ.is_working_day(day):
            return at
        day += timedelta(days=1)
        assert at < end, "no night in the window: widen it"


def test_the_day_of_receipt_is_the_requested_partys_local_date(world: DemoWorld) -> None:
    received = _night_receipt()
    local_day = received.astimezone(ALMATY).date()
    assert received.date() == local_day - timedelta(days=1)  # the UTC date is the day before
    with pair(world, "clock-night") as (ru, kz):
        _pin(received, ru, kz)
        header, _ = ru.submit(example("cis-enforcement.Request"), actor="test")
        deliver(ru, kz, header.message_id)
        expected = KZ.add_working_days(local_day, 30)
        assert expected != KZ.add_working_days(received.date(), 30)
        # Both sides hold the same date, counted from the Almaty date of receipt.
        assert _deadline(kz, header.conversation_id) == expected
        assert _deadline(ru, header.conversation_id) == expected


def test_a_published_calendar_moves_the_due_date_on_both_nodes(world: DemoWorld) -> None:
    start, _ = _window()
    with pair(world, "clock-published") as (ru, kz):
        _pin(start, ru, kz)
        received_on = start.astimezone(ALMATY).date()
        plain = KZ.add_working_days(received_on, 30)
        # KZ notifies a day off (a transfer decree the holidays package lacks) on the due date.
        published = dataclasses.replace(
            kz.directory, calendars=(PublishedCalendar("KZ", 1, frozenset({plain})),)
        )
        for node in (ru, kz):
            node.update_directory(published)
        header, _ = ru.submit(example("cis-enforcement.Request"), actor="test")
        deliver(ru, kz, header.message_id)
        moved = calendar_for("KZ", {plain}).add_working_days(received_on, 30)
        assert moved > plain
        assert (
            _deadline(kz, header.conversation_id) == moved == _deadline(ru, header.conversation_id)
        )


def test_a_requested_term_already_past_is_refused_at_submit(world: DemoWorld) -> None:
    start, _ = _window()
    with pair(world, "clock-past") as (ru, _kz):
        _pin(start, ru)
        document = example("cis-enforcement.Request")
        yesterday = start.astimezone(ALMATY).date() - timedelta(days=1)
        document["header"]["RequestedDeadline"] = yesterday.isoformat()
        with pytest.raises(DocumentRejected) as refused:
            ru.submit(document, actor="test")
        problem = refused.value.problems[0]
        assert problem.code == "REQUESTED_DEADLINE_IN_PAST"
        assert problem.path == "/Envelope/Header/RequestedDeadline"
        assert problem.article == "CIS Art. 12"


def test_a_requested_term_already_past_is_refused_at_receipt(world: DemoWorld) -> None:
    start, _ = _window()
    with pair(world, "clock-past-in") as (_ru, kz):
        _pin(start, kz)
        yesterday = start.astimezone(ALMATY).date() - timedelta(days=1)
        document = Signer.of(world, "RU-FSSP").document(
            "cis-enforcement.Request", start, RequestedDeadline=yesterday.isoformat()
        )
        answer = kz.receive("RU-FSSP", document)
        assert answer.disposition is Disposition.REFUSED
        assert answer.code == "REQUESTED_DEADLINE_IN_PAST"


# --- late answers -----------------------------------------------------------------------------


def _late_times() -> tuple[datetime, datetime, int]:
    """A receipt instant and an answer instant in the window with the most KZ working days
    between their Almaty dates (at least one: the answer is late)."""
    start, end = _window()
    best = None
    for hours in range(0, 36, 3):
        received = start + timedelta(hours=hours)
        answered = end - timedelta(hours=1)
        days = KZ.working_days_between(
            received.astimezone(ALMATY).date(), answered.astimezone(ALMATY).date()
        )
        if best is None or days > best[2]:
            best = (received, answered, days)
    assert best is not None and best[2] >= 1, "no working day in the window"
    return best


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, pg_schema: Callable[[str], str]) -> tuple[str, str]:
    if request.param == "sqlite":
        return "", ""
    return pg_schema("late_ru"), pg_schema("late_kz")


def test_a_late_answer_is_accepted_and_flagged_on_both_sides(
    world: DemoWorld, databases: tuple[str, str]
) -> None:
    received, answered, working_days_late = _late_times()
    tag = "clock-late-" + ("pg" if databases[0] else "sqlite")
    with pair(world, tag, databases) as (ru, kz):
        _pin(received, ru, kz)
        document = example("cis-enforcement.Request")
        # The shorter term CIS Art. 12 para. 2 allows: today, the day of receipt.
        due = received.astimezone(ALMATY).date()
        document["header"]["RequestedDeadline"] = due.isoformat()
        request, warnings = ru.submit(document, actor="test")
        assert not [w for w in warnings if w.code.startswith("REQUESTED_DEADLINE")]
        deliver(ru, kz, request.message_id)
        assert _deadline(kz, request.conversation_id) == due

        _pin(answered, ru, kz)
        to = {"conversation_id": request.conversation_id, "message_id": request.message_id}
        response, warnings = kz.submit(
            reply("cis-enforcement.Response", to, "RU-FSSP"), actor="test"
        )
        assert [w.code for w in warnings] == ["ANSWER_LATE"]
        outcome = deliver(kz, ru, response.message_id)
        assert outcome.late

        answered_on = answered.astimezone(ALMATY).date()
        for node in (ru, kz):
            with node.store.read() as conn:
                rows = conn.execute(sa.select(late_answers)).all()
            assert [(r.message_id, r.due, r.answered_on, r.days_late) for r in rows] == [
                (response.message_id, due, answered_on, working_days_late)
            ], node.body_id
            (event,) = audit_rows(node.store, "answer.late")
            assert event["subjects"]["message"] == response.message_id
            # The conversation view shows the flag on the answer.
            view = _view(node, request.conversation_id)
            flagged = {m.message_id: m.late for m in view.messages if m.late is not None}
            assert list(flagged) == [response.message_id]
            assert flagged[response.message_id].days_late == working_days_late


def test_the_late_answer_metric_counts_both_sides() -> None:
    metrics = GatewayMetrics()
    metrics.answer_late("cis-enforcement", LateSide.SENT)
    metrics.answer_late("cis-enforcement", LateSide.RECEIVED)
    metrics.answer_late("not-an-agreement", LateSide.RECEIVED)
    text = metrics.exposition().decode()
    assert 'gateway_answers_late_total{agreement="cis-enforcement",side="sent"} 1.0' in text
    assert 'gateway_answers_late_total{agreement="cis-enforcement",side="received"} 1.0' in text
    assert 'gateway_answers_late_total{agreement="other",side="received"} 1.0' in text


def _view(node: Node, conversation_id: str) -> Any:
    with ThreadPoolExecutor(1) as executor:
        service = local_service.LocalNodeService(node, executor)
        return asyncio.run(service.conversation(conversation_id, actor=OPERATOR, purpose=None))


def test_configured_extra_days_count_where_the_directory_publishes_none(
    world: DemoWorld,
) -> None:
    """A node's [calendar] extra days (TOML date strings) move its due date; the peer, whose
    configuration lacks them, keeps its own: only a published calendar makes both agree."""
    start, _ = _window()
    received_on = start.astimezone(ALMATY).date()
    plain = KZ.add_working_days(received_on, 30)
    with pair(world, "clock-configured") as (ru, kz):
        kz_path = kz.config.path
    with kz_path.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[calendar]\nextra_days_off = {{ KZ = ["{plain.isoformat()}"] }}\n')
    ru = Node.from_config(NodeConfig.from_toml(node_config(world, "RU-FSSP", "clock-configured")))
    kz = Node.from_config(NodeConfig.from_toml(kz_path))
    try:
        _pin(start, ru, kz)
        header, _ = ru.submit(example("cis-enforcement.Request"), actor="test")
        deliver(ru, kz, header.message_id)
        assert _deadline(kz, header.conversation_id) == calendar_for(
            "KZ", {plain}
        ).add_working_days(received_on, 30)
        assert _deadline(ru, header.conversation_id) == plain
    finally:
        ru.close()
        kz.close()


async def test_the_served_console_counts_with_the_nodes_calendars(world: DemoWorld) -> None:
    """Under ``gateway serve`` the console used the plain ``holidays`` calendar, not the node's
    configured days: now it asks the node for its calendars, and sees a new directory's."""
    runtime = NodeRuntime(
        Node.from_config(NodeConfig.from_toml(node_config(world, "KZ-MJ", "clock-console")))
    )
    await runtime.start(deliver=False, console=True)
    try:
        context = runtime.extra_runners[0].app[CONTEXT]
        assert context.calendars() is runtime.node.calendars
        runtime.node.update_directory(
            dataclasses.replace(
                runtime.node.directory, calendars=(PublishedCalendar("KZ", 9, frozenset()),)
            )
        )
        assert context.calendars() is runtime.node.calendars
        assert context.calendars().source("KZ").endswith("calendar KZ v9")
    finally:
        await runtime.stop()


# --- a pause through real nodes -----------------------------------------------------------------


def _months_ahead_pair(world: DemoWorld, tag: str) -> list[Node]:
    """The pair with revocation checks off: the demo CRLs run out in days, the certificates in
    two years, and this test needs a receipt weeks ahead (a due date a pause pushed to a
    Saturday under the old rule)."""
    nodes = []
    for body in ("RU-FSSP", "KZ-MJ"):
        path = node_config(world, body, tag)
        text = path.read_text(encoding="utf-8")
        path.write_text(
            text.replace("[trust]\n", "[trust]\nrequire_revocation_check = false\n", 1),
            encoding="utf-8",
        )
        nodes.append(Node.from_config(NodeConfig.from_toml(path)))
    assert not nodes[0].config.trust.require_revocation_check
    return nodes


def _saturday_under_the_old_rule() -> tuple[datetime, datetime, datetime]:
    """Receipt R (10:00 Almaty), pause from R + 1 day to R + 1 + k days, where the old rule (the
    30th working day plus k calendar days) fell on a Saturday, and the pause costs at least one
    working day (one over a weekend or a holiday, 16 December in Kazakhstan, costs none: it
    would prove nothing, and the date it is run on would decide whether it did)."""
    day = (datetime.now(UTC) + timedelta(days=7)).astimezone(ALMATY).date()
    while True:
        for k in (1, 2, 3):
            pause = (day + timedelta(days=1), day + timedelta(days=1 + k))
            if (KZ.add_working_days(day, 30) + timedelta(days=k)).weekday() == 5 and (
                KZ.working_days_between(*pause) > 0
            ):
                received = datetime.combine(day, time(10), ALMATY)
                since = received + timedelta(days=1)
                return received, since, since + timedelta(days=k)
        day += timedelta(days=1)


def test_a_pause_for_additional_information_counts_working_days(world: DemoWorld) -> None:
    received, since, until = _saturday_under_the_old_rule()
    ru, kz = _months_ahead_pair(world, "clock-pause")
    try:
        _pin(received, ru, kz)
        request, _ = ru.submit(example("cis-enforcement.Request"), actor="test")
        deliver(ru, kz, request.message_id)
        to = {"conversation_id": request.conversation_id, "message_id": request.message_id}

        _pin(since, ru, kz)
        question, _ = kz.submit(
            reply("cis-enforcement.AdditionalInfoRequest", to, "RU-FSSP"), actor="test"
        )
        deliver(kz, ru, question.message_id)

        _pin(until, ru, kz)
        asked = {"conversation_id": request.conversation_id, "message_id": question.message_id}
        answer, _ = ru.submit(
            reply("cis-enforcement.AdditionalInfoAnswer", asked, "KZ-MJ"), actor="test"
        )
        deliver(ru, kz, answer.message_id)

        paused = KZ.working_days_between(
            since.astimezone(ALMATY).date(), until.astimezone(ALMATY).date()
        )
        expected = KZ.add_working_days(received.astimezone(ALMATY).date(), 30 + paused)
        assert KZ.is_working_day(expected)
        for node in (ru, kz):
            assert _deadline(node, request.conversation_id) == expected, node.body_id
            view = _view(node, request.conversation_id)
            assert view.deadline_why is not None and "приостановлен" in view.deadline_why
    finally:
        ru.close()
        kz.close()
