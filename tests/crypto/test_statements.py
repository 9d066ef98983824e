"""The seal's detached statements (audit checkpoints, purge reports) are judged by the
generation that signed them and the time they state: a seal revoked at r signs nothing dated at
or after r, a generation signs nothing dated before it came into force, and one revoked for key
compromise proves no time of its own (``compromised_at`` asks the caller for other evidence)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.crypto.keys.generations import NEVER, RevocationReason, Signer
from gateway.crypto.keys.keystore import SigningKey
from gateway.crypto.statements import sign_statement, verify_statement
from tests.crypto.helpers import CryptoPKI

T = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seal(test_pki: CryptoPKI) -> SigningKey:
    keys = test_pki.store()
    try:
        return keys.seal()
    finally:
        keys.close()


def _signed(seal: SigningKey, at: datetime) -> tuple[str, bytes, bytes]:
    signed = sign_statement(seal, {"seq": 7, "at": at.isoformat()})
    return signed.statement, signed.signature, signed.certificate


def _signer(seal: SigningKey, **window: object) -> Signer:
    return Signer(2, seal.certificate, **window)  # type: ignore[arg-type]


def test_a_statement_inside_its_generation_s_window_holds(seal: SigningKey) -> None:
    check = verify_statement(
        *_signed(seal, T),
        [_signer(seal, in_force_from=T - timedelta(days=1), revoked_at=T + timedelta(seconds=1))],
    )
    assert check.ok, check.reason
    assert (check.generation, check.signed_at) == (2, T)


@pytest.mark.parametrize("reason", [RevocationReason.SUPERSEDED, RevocationReason.KEY_COMPROMISE])
def test_a_statement_dated_at_or_after_the_revocation_is_refused(
    seal: SigningKey, reason: RevocationReason
) -> None:
    check = verify_statement(*_signed(seal, T), [_signer(seal, revoked_at=T, reason=reason)])
    assert not check.ok
    assert "revoked" in check.reason and reason.value in check.reason
    assert check.compromised_at is None  # refused outright: no evidence can save it


def test_a_statement_dated_before_its_generation_came_into_force_is_refused(
    seal: SigningKey,
) -> None:
    early = verify_statement(*_signed(seal, T), [_signer(seal, in_force_from=T + timedelta(1))])
    assert not early.ok and "in force only from" in early.reason
    never = verify_statement(*_signed(seal, T), [_signer(seal, in_force_from=NEVER)])
    assert not never.ok and "never activated" in never.reason


def test_a_compromised_generation_s_statement_needs_other_evidence(seal: SigningKey) -> None:
    revoked = T + timedelta(days=30)
    check = verify_statement(
        *_signed(seal, T),
        [_signer(seal, revoked_at=revoked, reason=RevocationReason.KEY_COMPROMISE)],
    )
    assert not check.ok
    assert check.compromised_at == revoked
    assert "key compromise" in check.reason


def test_a_statement_without_its_time_is_refused(seal: SigningKey) -> None:
    signed = sign_statement(seal, {"seq": 7})
    check = verify_statement(
        signed.statement, signed.signature, signed.certificate, [_signer(seal)]
    )
    assert not check.ok and "'at'" in check.reason
    naive = sign_statement(seal, {"seq": 7, "at": "2026-12-06T12:00:00"})
    check = verify_statement(naive.statement, naive.signature, naive.certificate, [_signer(seal)])
    assert not check.ok, "a time without its offset is no time"


def test_a_statement_dated_outside_its_certificate_s_validity_is_refused(
    seal: SigningKey,
) -> None:
    late = seal.certificate.not_valid_after_utc + timedelta(days=1)
    check = verify_statement(*_signed(seal, late), [_signer(seal)])
    assert not check.ok and "certificate is valid only from" in check.reason
    early = seal.certificate.not_valid_before_utc - timedelta(seconds=1)
    assert not verify_statement(*_signed(seal, early), [_signer(seal)]).ok
