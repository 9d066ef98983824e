"""Administration pages over a real SQLite store: keys, directory, retention, legal holds and
purge runs (administrator), the audit trail's search with keyset paging and the chain check
(auditor); a source not connected says so; roles are enforced."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.app import slots
from gateway.app.context import serving_context
from gateway.app.retention import load_retention
from gateway.app.schedule import ScheduleSettings
from gateway.crypto.keys.keystore import KeyEntry
from gateway.model.bodies import BodyLevel
from gateway.model.directory import BodyName, Directory, DirectoryBody
from gateway.model.problems import ConfigurationError
from gateway.model.profiles import CIS_ENFORCEMENT, Participation
from gateway.store import audit as audit_store
from gateway.store import purge as purge_store
from gateway.store.engine import open_store
from gateway.store.tables import audit_events, legal_holds
from gateway.web.console import make_console_app
from gateway.web.console.admin import AUDIT_PAGE_SIZE
from gateway.web.console.sources import (
    StoreAuditTrail,
    admin_holds,
    app_job_runs,
    store_purge_runs,
)
from tests.app.surfaces import audit_of
from tests.web.console.conftest import IDENTITY, NOW, signed_in, store_sources, uid

ADMIN_PAGES = ("/admin/keys", "/admin/directory", "/admin/retention", "/admin/holds", "/admin/jobs")


@pytest.fixture
def store(store_url: str):
    opened = open_store(store_url)
    yield opened
    opened.dispose()


def _keys() -> list[KeyEntry]:
    return [
        KeyEntry(
            "seal",
            "",
            "keys/seal.key.pem",
            "ECDSA P-256",
            "CN=KZ-MJ seal",
            "CN=KZ CA",
            NOW - timedelta(days=300),
            NOW + timedelta(days=12),
            stem="seal",
        ),
        KeyEntry(
            "tls",
            "",
            "keys/tls.key.pem",
            "ECDSA P-256",
            "CN=kz-mj.example",
            "CN=KZ CA",
            NOW - timedelta(days=10),
            NOW + timedelta(days=355),
        ),
        KeyEntry(
            "seal",
            "",
            "keys/seal.2.key.pem",
            "ECDSA P-256",
            "CN=KZ-MJ seal",
            "CN=KZ CA",
            NOW - timedelta(days=1),
            NOW + timedelta(days=730),
            generation=2,
            stem="seal.2",
            status="pending",
            activation_at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
        ),
    ]


def _directory() -> Directory:
    return Directory(
        version=7,
        issued_at=NOW - timedelta(days=3),
        depositary="BY-CISEXCOM",
        bodies=(
            DirectoryBody(
                id="KZ-MJ",
                state="KZ",
                level=BodyLevel.CENTRAL,
                names=(BodyName("ru", "Министерство юстиции Республики Казахстан"),),
                endpoint="https://kz-mj.example:8443",
                certificates=(),
                calendar="KZ",
                reservations=tuple(r for r in CIS_ENFORCEMENT.reservations if r.state == "KZ"),
                participations=(Participation("KZ", "cis-enforcement", date(2026, 1, 1)),),
            ),
        ),
    )


@pytest.fixture
def sources(store, tmp_path: Path):
    async def key_entries(actor):
        return _keys()

    async def directory():
        return _directory()

    async def retention():
        return load_retention(None, tmp_path / "node.toml")

    return {
        "key_entries": key_entries,
        "directory": directory,
        "retention": retention,
        "holds": admin_holds(serving_context(store)),
        "purge_runs": store_purge_runs(store),
        "job_runs": app_job_runs(serving_context(store), ScheduleSettings(UTC)),
        "audit_trail": StoreAuditTrail(store),
        "config_hint": "/etc/gateway/node.toml",
    }


async def test_console_without_a_source_refuses_to_start(
    service, users, audit, sources, console_store, tmp_path
) -> None:
    """A console missing a source does not start (no page ever says «не подключены»)."""
    everything = {**store_sources(console_store, tmp_path / "node.toml"), **sources}
    for missing in ("expiring_keys", "undelivered", "key_entries", "audit_trail"):
        given = {k: v for k, v in everything.items() if k != missing}
        with pytest.raises(ConfigurationError, match=missing):
            make_console_app(
                service, users, secure_cookies=False, audit=audit, identity=IDENTITY, **given
            )


async def test_keys_page_lists_entries_and_rotation_commands(make_client, sources) -> None:
    client = await make_client(**sources)
    await signed_in(client, "admin1")
    html = await (await client.get("/admin/keys")).text()
    seal = html.split('id="key-seal"', 1)[1].split("</tr>", 1)[0]
    assert 'data-days="12"' in seal and "CN=KZ-MJ seal" in seal
    assert re.search(r'<tr id="key-seal" class="near">', html)
    assert re.search(r'<tr id="key-tls" class="">', html)
    commands = html.split('id="rotation-commands">', 1)[1].split("</pre>", 1)[0]
    assert "gateway keys rotate seal --config /etc/gateway/node.toml" in commands
    assert "gateway keys import seal /path/to/new-certificate.pem --generation 2" in commands
    assert "gateway keys activate tls --generation 2" in commands
    # The schedule, in Russian (issue #19: English status words, no planned time).
    pending = html.split('id="key-seal-g2"', 1)[1].split("</tr>", 1)[0]
    assert "ожидает перехода" in pending and 'data-status="pending"' in pending
    assert "действует с 01.12.2026" in pending, pending
    # Each generation's key name, what revoking it from the console asks to be typed.
    assert '<code class="key-stem">seal</code>' in seal
    assert '<code class="key-stem">seal.2</code>' in pending


async def test_directory_page(make_client, sources) -> None:
    client = await make_client(**sources)
    await signed_in(client, "admin1")
    html = await (await client.get("/admin/directory")).text()
    assert '<dd id="directory-version">7</dd>' in html
    row = html.split('id="body-KZ-MJ"', 1)[1].split("</tr>", 1)[0]
    assert "Министерство юстиции" in row and "в силе с 01.01.2026" in row
    assert "https://kz-mj.example:8443" in row


async def test_retention_page_shows_the_defaults(make_client, sources) -> None:
    client = await make_client(**sources)
    await signed_in(client, "admin1")
    html = await (await client.get("/admin/retention")).text()
    policies = (await sources["retention"]()).policies
    assert policies
    for policy in policies:
        assert f'id="policy-{policy.name}"' in html
    assert "встроенные значения по умолчанию" in html


async def test_holds_and_purge_runs(make_client, sources, store) -> None:
    cid = uid("held conversation")
    with store.transaction() as conn:
        for i, released in enumerate((None, NOW)):
            conn.execute(
                legal_holds.insert().values(
                    conversation_id=cid,
                    reference=f"Постановление № {i + 1}",
                    placed_by="admin1",
                    placed_at=NOW - timedelta(days=2 - i),
                    released_by="admin1" if released else None,
                    released_at=released,
                )
            )
        purge_store.start_run(conn, "run-1", "cis-received", "job:purge", NOW)
        purge_store.finish_run(conn, "run-1", NOW + timedelta(minutes=1), held=3)
        purge_store.start_run(conn, "run-2", "sc-received", "job:purge", NOW + timedelta(hours=1))
        purge_store.finish_run(conn, "run-2", NOW + timedelta(hours=1), error_code="DB_TIMEOUT")
    client = await make_client(**sources)
    await signed_in(client, "admin1")
    html = await (await client.get("/admin/holds")).text()
    assert "Постановление № 1" in html and "Постановление № 2" not in html
    assert 'id="run-run-1"' in html and 'id="run-run-2" class="overdue"' in html
    assert "DB_TIMEOUT" in html
    everything = await (await client.get("/admin/holds?released=yes")).text()
    assert "Постановление № 2" in everything


async def test_audit_search_filters_and_pages(make_client, sources, store) -> None:
    total = AUDIT_PAGE_SIZE + 30
    with store.transaction() as conn:
        for i in range(total):
            audit_store.append(
                conn,
                now=NOW + timedelta(minutes=i),
                actor="operator1" if i % 2 else "job:retention",
                kind="document.read" if i % 3 else "console.signed_in",
                subjects={"message": uid(f"m{i}")},
                details={"n": i},
            )
    client = await make_client(**sources)
    await signed_in(client, "auditor1")
    first = await (await client.get("/admin/audit")).text()
    seqs = [int(s) for s in re.findall(r'<tr id="event-(\d+)"', first)]
    assert len(seqs) == AUDIT_PAGE_SIZE and seqs == sorted(seqs, reverse=True)
    next_link = re.search(r'href="([^"]+)" id="audit-next-page"', first)
    assert next_link
    second = await (await client.get(next_link.group(1).replace("&amp;", "&"))).text()
    more = [int(s) for s in re.findall(r'<tr id="event-(\d+)"', second)]
    assert more and max(more) < min(seqs)
    assert 'id="audit-next-page"' not in second

    filtered = await (
        await client.get("/admin/audit", params={"kind": "console.", "actor": "operator1"})
    ).text()
    rows = re.findall(r'<tr id="event-\d+">(.*?)</tr>', filtered, re.S)
    assert rows and all("operator1" in r and "console.signed_in" in r for r in rows)
    expected = len([i for i in range(total) if i % 2 and not i % 3])
    assert len(rows) == expected

    day = (NOW + timedelta(minutes=40)).strftime("%Y-%m-%dT%H:%M")
    since = await (await client.get("/admin/audit", params={"since": day + "+00:00"})).text()
    shown = re.findall(r'<tr id="event-(\d+)"', since)
    assert len(shown) == total - 40

    bad = await client.get("/admin/audit", params={"kind": "<script>", "before": "x"})
    assert bad.status == 400
    html = await bad.text()
    assert 'id="error-kind"' in html and 'id="error-before"' in html and "<script>" not in html

    # A mistyped kind finds nothing, which would read as "nothing happened": it is named.
    typo = await client.get("/admin/audit", params={"kind": "documnet.read"})
    assert typo.status == 400
    error = (await typo.text()).split('id="error-kind"', 1)[1].split("</", 1)[0]
    assert "не вид события журнала" in error and "document.read" in error


def _verified(store: Any) -> list[dict[str, Any]]:
    """The trail's own record of each verification (gateway.app.audit.verify)."""
    return audit_of(store, "audit.verified")


async def test_verify_the_chain_intact_then_broken(make_client, sources, store, audit) -> None:
    with store.transaction() as conn:
        for i in range(5):
            audit_store.append(
                conn, now=NOW + timedelta(seconds=i), actor="system", kind="document.read"
            )
    client = await make_client(**sources)
    token = await signed_in(client, "auditor1")
    intact = await (await client.post("/admin/audit/verify", data={"csrf_token": token})).text()
    assert 'id="chain-intact"' in intact
    assert _verified(store)[-1]["details"]["intact"] is True
    with store.transaction() as conn:
        conn.execute(
            sa.update(audit_events).where(audit_events.c.seq == 3).values(actor="someone-else")
        )
    broken = await (await client.post("/admin/audit/verify", data={"csrf_token": token})).text()
    match = re.search(r'id="chain-broken" role="alert" data-broken-at="(\d+)"', broken)
    assert match and match.group(1) == "3"
    assert _verified(store)[-1]["details"]["broken_at"] == 3
    assert _verified(store)[-1]["actor"] == "auditor1"
    # Without the token the check is not run (a POST like any other).
    refused = await client.post("/admin/audit/verify", data={})
    assert refused.status == 403


async def test_roles(make_client, sources) -> None:
    client = await make_client(**sources)
    await signed_in(client, "operator1")
    for page in (*ADMIN_PAGES, "/admin/audit", "/admin"):
        assert (await client.get(page)).status == 403, page
    dashboard = await (await client.get("/")).text()
    assert 'id="nav-admin"' not in dashboard
    client2 = await make_client(**sources)
    await signed_in(client2, "auditor1")
    assert (await client2.get("/admin/audit")).status == 200
    for page in ADMIN_PAGES:
        assert (await client2.get(page)).status == 403, page
    index = await (await client2.get("/admin")).text()
    assert 'id="admin-audit"' in index and 'id="admin-keys"' not in index
    client3 = await make_client(**sources)
    await signed_in(client3, "admin1")
    for page in ADMIN_PAGES:
        assert (await client3.get(page)).status == 200, page
    assert (await client3.get("/admin/audit")).status == 403


_TAGS = re.compile(r"<pre.*?</pre>|<code[^>]*>.*?</code>|CN=[^<]*|<[^>]*>", re.S)
"""Markup, and data shown as it is: commands, file paths, certificate subjects."""
RAW = re.compile(
    r"(?<![\w.=\"-])(active|pending|seal|official|tls|kek|limits-article|non-application|"
    r"conversation-closed|received|years?|True|False|None|Placeholder|console\.\w+|"
    r"cis-enforcement|ru-kz-supreme-courts|in|out)(?![\w-])"
)


async def test_administration_pages_read_in_russian(make_client, sources, store) -> None:
    """Roles, key states, reservations, periods, events and details in Russian; codes only in
    the commands an administrator types and in attributes a browser test reads."""
    with store.transaction() as conn:
        audit_store.append(
            conn,
            now=NOW,
            actor="operator1",
            kind="document.read",
            subjects={"message": uid("m")},
            details={"confidential": False, "purpose": None},
        )
        audit_store.append(
            conn,
            now=NOW,
            actor="cli",
            kind="user.added",
            subjects={"username": "reader2"},
            details={"roles": "operator,confidential-reader"},
        )
    client = await make_client(**sources)
    for user, pages in (
        ("admin1", ("/admin", "/admin/keys", "/admin/directory", "/admin/retention")),
        ("auditor1", ("/admin/audit",)),
    ):
        await signed_in(client, user)
        for page in pages:
            html = await (await client.get(page)).text()
            text = _TAGS.sub(" ", html.split('<main id="main">', 1)[1])
            assert RAW.findall(text) == [], (page, RAW.findall(text))
    audit = await (await client.get("/admin/audit")).text()
    assert "Просмотр документа" in audit and "Конфиденциально: нет" in audit
    assert "Роли: Оператор, Допуск к конфиденциальным документам" in audit
    await signed_in(client, "admin1")
    retention = await (await client.get("/admin/retention")).text()
    assert "5 лет" in retention and "завершения переписки" in retention


async def test_scheduled_jobs_with_their_last_runs(make_client, sources, store) -> None:
    """#20 item 5: each job's last run and how it ended, from ``jobs_slots`` as the scheduler
    records them (claimed and finished by the scheduler's own functions)."""
    slots.ensure_table(store.engine)
    slot = NOW - timedelta(hours=3)
    assert slots.claim(store.engine, "purge", slot, "host-1:42", slot) is None
    slots.finish(
        store.engine,
        "purge",
        slot,
        outcome=slots.SUCCEEDED,
        finished_at=slot + timedelta(seconds=4),
        count=17,
    )
    failed = NOW - timedelta(minutes=1)
    assert slots.claim(store.engine, "deadline-reminders", failed, "host-2:7", failed) is None
    slots.finish(
        store.engine,
        "deadline-reminders",
        failed,
        outcome=slots.FAILED,
        finished_at=failed,
        detail="OperationalError",
    )
    client = await make_client(**sources)
    await signed_in(client, "admin1")
    html = await (await client.get("/admin")).text()
    assert 'id="admin-jobs"' in html
    response = await client.get("/admin/jobs")
    html = await response.text()
    assert response.status == 200
    assert 'id="job-purge" data-outcome="succeeded"' in html
    assert "Уничтожение по срокам хранения" in html and "30 2 * * *" in html
    assert re.search(r'id="job-outcome-purge">успешно<', html)
    assert ">17<" in html and "4.0 с" in html
    assert 'id="job-deadline-reminders" data-outcome="failed" class="overdue"' in html
    assert "ошибка (OperationalError)" in html
    assert 'id="job-outbox-retry" data-outcome="never"' in html and "не запускалось" in html
    for code in ("succeeded", "failed", "deadline-reminders</td>", "key-expiry-warnings</td>"):
        assert code not in html.replace('data-outcome="succeeded"', "").replace(
            'data-outcome="failed"', ""
        )


async def test_jobs_page_is_for_administrators(make_client, sources) -> None:
    client = await make_client(**sources)
    await signed_in(client, "operator1")
    response = await client.get("/admin/jobs")
    assert response.status == 403
