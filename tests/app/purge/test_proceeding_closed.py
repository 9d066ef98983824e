"""A proceeding marked closed (CIS Art. 9.6) through ``gateway proceedings close``: audited, set
once, and the retention clock counting from "proceeding-closed" starts at its date. SQLite and
PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.app.purge import Decision, plan
from gateway.crypto.keys.kek import KekRing
from gateway.main import main
from gateway.store import Store, audit
from gateway.store import conversations as conv_store
from tests.app.purge.world import T0, add_conversation, after, one_policy


def _gateway(*argv: str) -> int:
    """The command in this process, through the one boundary that reports failures."""
    return main(list(argv))


def _close(node_toml: Path, cid: str, closed_at: datetime, reference: str = "пост. № 5") -> int:
    return _gateway(
        "proceedings",
        "close",
        "--config",
        str(node_toml),
        "--conversation",
        cid,
        "--closed-at",
        closed_at.isoformat(),
        "--reference",
        reference,
    )


def _expiring(store: Store, now: datetime) -> set[str]:
    policy = one_policy("proceeding-closed", "1 year")
    return {d.message_id for d in plan(store, policy, now) if isinstance(d, Decision)}


def test_marking_a_proceeding_closed_starts_its_retention_and_is_audited(
    store: Store, ring: KekRing, node_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0)
    closed = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert closed < datetime.now(UTC)
    # Never closed: a policy counting from the close keeps everything, however late.
    assert _expiring(store, after(T0, days=365 * 30)) == set()

    assert _close(node_toml, conv.conversation_id, closed) == 0
    assert "отмечено закрытым" in capsys.readouterr().out

    with store.read() as conn:
        stored = conv_store.get(conn, conv.conversation_id)
        events = [e for e in audit.events(conn) if e.kind == "proceeding.closed"]
    assert stored is not None and stored.proceeding_closed_at == closed
    [event] = events
    assert event.subjects == {"conversation_id": conv.conversation_id}
    assert event.details == {"closed_at": closed.isoformat(), "reference": "пост. № 5"}
    assert event.actor.startswith("cli:")
    one_year_on = datetime(2027, 6, 1, 10, 0, tzinfo=UTC)
    assert _expiring(store, one_year_on - timedelta(seconds=1)) == set()
    assert _expiring(store, one_year_on) == set(conv.message_ids)


@pytest.mark.parametrize(
    ("closed_at", "code", "exit_code"),
    [
        (datetime(2099, 1, 1, tzinfo=UTC), "PROCEEDING_CLOSED_IN_FUTURE", 1),
        (after(T0, days=-1), "PROCEEDING_CLOSED_BEFORE_CONVERSATION", 1),
    ],
)
def test_a_closing_date_that_cannot_be_is_refused_and_nothing_changes(
    store: Store,
    ring: KekRing,
    node_toml: Path,
    capsys: pytest.CaptureFixture[str],
    closed_at: datetime,
    code: str,
    exit_code: int,
) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0)
    assert _close(node_toml, conv.conversation_id, closed_at) == exit_code
    assert f"[{code}]" in capsys.readouterr().err
    with store.read() as conn:
        stored = conv_store.get(conn, conv.conversation_id)
        audited = [e for e in audit.events(conn) if e.kind == "proceeding.closed"]
    assert stored is not None and stored.proceeding_closed_at is None
    assert audited == []


def test_the_date_is_set_once_and_an_unknown_conversation_is_named(
    store: Store, ring: KekRing, node_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.transaction() as conn:
        conv = add_conversation(conn, ring, T0)
    first = datetime(2026, 6, 1, tzinfo=UTC)
    assert _close(node_toml, conv.conversation_id, first) == 0
    capsys.readouterr()
    assert _close(node_toml, conv.conversation_id, datetime(2026, 7, 1, tzinfo=UTC)) == 1
    assert "[PROCEEDING_ALREADY_CLOSED]" in capsys.readouterr().err
    with store.read() as conn:
        stored = conv_store.get(conn, conv.conversation_id)
    assert stored is not None and stored.proceeding_closed_at == first

    missing = "00000000-0000-4000-8000-000000000000"
    assert _close(node_toml, missing, first) == 2
    assert "[UNKNOWN_CONVERSATION]" in capsys.readouterr().err
    assert _close(node_toml, conv.conversation_id, first, reference="  ") == 1
    assert _gateway(
        "proceedings", "close", "--config", str(node_toml), "--conversation",
        conv.conversation_id, "--closed-at", "2026-06-01", "--reference", "x",
    ) == 2  # fmt: skip
    assert "часовым поясом" in capsys.readouterr().err
