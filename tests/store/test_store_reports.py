"""Verification reports recorded at receipt: encrypted under the message's key, indications in
clear for lists, tamper-evident, gone with the message when it is purged."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.crypto.at_rest import DecryptionFailed
from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.crypto.report import (
    CertificateInfo,
    Indication,
    RevocationStatus,
    SignatureReport,
    SubIndication,
    ValidationReport,
)
from gateway.store import Store, keys, messages, purge, reports
from gateway.store.reports import ReportPurpose
from gateway.store.tables import verification_reports
from tests.store import factory
from tests.store.conftest import NOW

OFFICIAL = "CN=Қасымова Айгүл Маратқызы,O=Ministry of Justice,C=KZ"


def _validation_report(indication=Indication.TOTAL_PASSED, sub=None) -> ValidationReport:
    chain = (
        CertificateInfo(
            OFFICIAL,
            "CN=KZ Root",
            "0a1b",
            NOW - timedelta(days=300),
            NOW + timedelta(days=65),
            "ab" * 32,
        ),
    )
    return ValidationReport(
        signatures=(
            SignatureReport(
                "official",
                indication,
                sub,
                "ok" if sub is None else "revoked since",
                signer_subject=OFFICIAL,
                signer_body_id="KZ-MJ",
                claimed_signing_time=NOW - timedelta(minutes=3),
                signature_algorithm="ecdsa-sha256",
                digest_algorithm="sha256",
                chain=chain,
                revocation=RevocationStatus.GOOD,
            ),
            SignatureReport("seal", Indication.TOTAL_PASSED, None, "ok", signer_body_id="KZ-MJ"),
        ),
        validated_at=NOW,
        document_sha256="cd" * 32,
        extra={"profile": "cis-enforcement"},
    )


def _received(store: Store, ring: KekRing, count: int = 1) -> list[str]:
    ids = []
    with store.transaction() as conn:
        cid = factory.open_conversation(conn, NOW)
        for _ in range(count):
            head = factory.header(cid, NOW - timedelta(minutes=5))
            messages.insert_received(
                conn, head, factory.signed_document(head.message_id), ring, NOW
            )
            ids.append(head.message_id)
    return ids


def _record(conn, ring, message_id, report: ValidationReport, purpose="receipt", at=NOW) -> int:
    failure = report.first_failure
    return reports.record_report(
        conn,
        message_id,
        report.to_json(),
        str(report.indication),
        str(failure.sub_indication) if failure and failure.sub_indication else None,
        purpose,
        at,
        ring,
    )


def test_report_json_round_trip() -> None:
    report = _validation_report(Indication.TOTAL_FAILED, SubIndication.REVOKED)
    data = report.to_json()
    assert data["indication"] == "TOTAL_FAILED"
    assert data["signatures"][0]["chain"][0]["not_after"] == (NOW + timedelta(days=65)).isoformat()
    assert ValidationReport.from_json(data) == report


def test_record_and_read_the_latest(store: Store, ring: KekRing) -> None:
    (mid,) = _received(store, ring)
    at_receipt = _validation_report()
    later = _validation_report(Indication.TOTAL_FAILED, SubIndication.REVOKED)
    with store.transaction() as conn:
        assert reports.latest_report(conn, mid, ring) is None
        _record(conn, ring, mid, at_receipt)
    with store.transaction() as conn:
        _record(conn, ring, mid, later, purpose="reverify", at=NOW + timedelta(days=3))
    with store.read() as conn:
        latest = reports.latest_report(conn, mid, ring)
    assert latest is not None
    assert (latest.purpose, latest.indication, latest.sub_indication) == (
        ReportPurpose.REVERIFY,
        "TOTAL_FAILED",
        "REVOKED",
    )
    assert latest.recorded_at == NOW + timedelta(days=3)
    assert ValidationReport.from_json(latest.report) == later


def test_indications_for_lists_without_keys(store: Store, ring: KekRing) -> None:
    first, second, bare = _received(store, ring, count=3)
    with store.transaction() as conn:
        _record(conn, ring, first, _validation_report())
        _record(conn, ring, second, _validation_report())
        _record(
            conn,
            ring,
            second,
            _validation_report(Indication.INDETERMINATE, SubIndication.TRY_LATER),
            purpose="reverify",
            at=NOW + timedelta(hours=1),
        )
    with store.read() as conn:
        found = reports.report_indications(conn, [first, second, bare, "unknown"])
    assert found == {
        first: ("TOTAL_PASSED", None),
        second: ("INDETERMINATE", "TRY_LATER"),
    }


def test_report_is_encrypted_at_rest(store: Store, ring: KekRing) -> None:
    (mid,) = _received(store, ring)
    with store.transaction() as conn:
        _record(conn, ring, mid, _validation_report())
    with store.read() as conn:
        stored = conn.execute(sa.select(verification_reports.c.report)).scalar_one()
    for value in ("Қасымова", "Ministry of Justice", "ecdsa-sha256", "cis-enforcement"):
        assert value.encode() not in stored


@pytest.mark.parametrize(
    "column, value",
    [
        ("indication", "TOTAL_PASSED"),  # a failed report relabelled as passed
        ("recorded_at", NOW + timedelta(days=9)),
        ("purpose", "receipt"),
    ],
)
def test_altered_clear_columns_do_not_open(store: Store, ring: KekRing, column, value) -> None:
    (mid,) = _received(store, ring)
    failed = _validation_report(Indication.TOTAL_FAILED, SubIndication.REVOKED)
    with store.transaction() as conn:
        _record(conn, ring, mid, failed, purpose="reverify")
        conn.execute(verification_reports.update().values({column: value}))
    with store.read() as conn, pytest.raises(DecryptionFailed):
        reports.latest_report(conn, mid, ring)


def test_report_moved_to_another_message_does_not_open(store: Store, ring: KekRing) -> None:
    first, second = _received(store, ring, count=2)
    with store.transaction() as conn:
        _record(conn, ring, first, _validation_report())
        conn.execute(verification_reports.update().values(message_id=second))
    with store.read() as conn, pytest.raises(DecryptionFailed):
        reports.latest_report(conn, second, ring)


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("purpose", {"purpose": "audit"}),
        ("indication", {"indication": "PASSED"}),
        ("sub_indication", {"sub_indication": "BAD"}),
        ("at", {"at": datetime(2026, 1, 1)}),  # naive: the bad input
    ],
)
def test_bad_input_names_the_field(store: Store, ring: KekRing, field, kwargs) -> None:
    (mid,) = _received(store, ring)
    args = {
        "indication": "TOTAL_PASSED",
        "sub_indication": None,
        "purpose": "receipt",
        "at": NOW,
    } | kwargs
    with store.transaction() as conn, pytest.raises(ValueError, match=field):
        reports.record_report(
            conn,
            mid,
            {},
            args["indication"],
            args["sub_indication"],
            args["purpose"],
            args["at"],
            ring,
        )


def _purge(store: Store, ids: list[str], *, batch: bool) -> None:
    with store.transaction() as conn:
        purge.start_run(conn, "run-r", "p", "job:purge", NOW)
    with store.transaction() as conn:
        if batch:
            locked = purge.lock_batch(conn, ids)
            purge.purge_batch(
                conn, [(m, "p") for m in locked], run_id="run-r", actor="job:purge", now=NOW
            )
        else:
            purge.purge_messages(conn, ids, run_id="run-r", policy="p", now=NOW)


@pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "set-based"])
def test_purge_removes_reports(store: Store, ring: KekRing, batch: bool) -> None:
    purged, kept = _received(store, ring, count=2)
    with store.transaction() as conn:
        for mid in (purged, kept):
            _record(conn, ring, mid, _validation_report())
            _record(
                conn, ring, mid, _validation_report(), purpose="reverify", at=NOW + timedelta(1)
            )
    _purge(store, [purged], batch=batch)
    with store.read() as conn:
        left = conn.execute(sa.select(verification_reports.c.message_id)).scalars().all()
        assert left == [kept, kept]
        assert reports.latest_report(conn, purged, ring) is None
        assert reports.report_indications(conn, [purged, kept]) == {kept: ("TOTAL_PASSED", None)}
        assert reports.latest_report(conn, kept, ring).purpose is ReportPurpose.REVERIFY
    with store.transaction() as conn, pytest.raises(messages.KeyShredded):
        _record(conn, ring, purged, _validation_report(), purpose="reverify")


def test_reports_open_after_kek_rotation(store: Store, ring: KekRing) -> None:
    """Reports use the message's data key: re-wrapping that key carries them along."""
    (mid,) = _received(store, ring)
    with store.transaction() as conn:
        _record(conn, ring, mid, _validation_report())
    new_kek = FileKek("kek-test-2", secrets.token_bytes(32))
    both = KekRing([ring.active, new_kek], new_kek.key_id)
    while True:
        with store.transaction() as conn:
            if keys.rewrap_batch(conn, both, NOW, 100) == 0:
                break
    only_new = KekRing.single(new_kek)
    with store.read() as conn:
        assert reports.latest_report(conn, mid, only_new).indication == "TOTAL_PASSED"
