"""Users (argon2 hashes, roles, lock-out) and API tokens (hashes only, scopes, expiry)."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from gateway.store import Store, tokens, users
from gateway.store.tables import api_tokens
from tests.store.conftest import NOW

HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # quick for tests


def test_attempts_at_once_claim_no_more_than_the_lock_out_allows(store: Store) -> None:
    """Twenty sign-in attempts at once, each on a connection of its own (workers, processes):
    five are counted and may have their password checked, the fifth locks, the rest find the
    account locked. The claim is one UPDATE whose condition the database re-checks under the
    row's lock, so no two attempts see the same count."""
    with store.transaction() as conn:
        uid = users.create(conn, "operator1", HASHER.hash("pw"), ["operator"], NOW)
    start = threading.Barrier(20)

    def attempt(_: int) -> bool:
        start.wait()
        with store.transaction() as conn:
            return users.claim_sign_in(conn, uid, NOW, 5, timedelta(minutes=15)) is not None

    with ThreadPoolExecutor(max_workers=20) as pool:
        claimed = list(pool.map(attempt, range(20)))
    assert claimed.count(True) == 5
    with store.read() as conn:
        assert users.get(conn, uid).locked(NOW)


def test_user_lockout_and_reset(store: Store) -> None:
    with store.transaction() as conn:
        uid = users.create(conn, "operator1", HASHER.hash("pw"), ["operator", "viewer"], NOW)
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            users.create(conn, "operator1", HASHER.hash("pw"), [], NOW)
        with pytest.raises(ValueError, match="argon2"):
            users.create(conn, "operator2", "plain-password", [], NOW)
    lock_for = timedelta(minutes=15)
    with store.transaction() as conn:
        for i in range(1, 3):
            user = users.claim_sign_in(conn, uid, NOW, 3, lock_for)
            assert user is not None and user.failed_attempts == i and not user.locked(NOW)
        user = users.claim_sign_in(conn, uid, NOW, 3, lock_for)  # the third locks
        assert user is not None and user.locked(NOW) and not user.locked(NOW + lock_for)
        assert users.claim_sign_in(conn, uid, NOW + lock_for / 2, 3, lock_for) is None
        claimed = users.claim_sign_in(conn, uid, NOW + lock_for, 3, lock_for)
        assert claimed is not None and claimed.failed_attempts == 1  # counting again
        users.record_login(conn, uid, NOW + lock_for)
        user = users.get_by_username(conn, "operator1")
    assert user.failed_attempts == 0 and user.locked_until is None
    assert user.roles == {"operator", "viewer"} and user.last_login_at == NOW + lock_for
    HASHER.verify(user.password_hash, "pw")
    with store.transaction() as conn:
        users.set_disabled(conn, uid, True, NOW)
        users.set_roles(conn, uid, ["admin"], NOW)
        with pytest.raises(ValueError, match="role"):
            users.set_roles(conn, uid, ["Admin Role"], NOW)
        assert users.get(conn, uid).disabled and users.get(conn, uid).roles == {"admin"}
        assert [u.username for u in users.list_users(conn)] == ["operator1"]


def test_tokens_store_only_hashes(store: Store) -> None:
    token = secrets.token_urlsafe(32)
    with store.transaction() as conn:
        tid = tokens.create(
            conn,
            token,
            label="case-system",
            scopes=["send", "read"],
            now=NOW,
            expires_at=NOW + timedelta(days=30),
        )
        with pytest.raises(ValueError, match="at least"):
            tokens.create(conn, "short", label="x", scopes=[], now=NOW)
        stored = conn.execute(sa.select(api_tokens)).one()
    assert token.encode() not in b"".join(
        v if isinstance(v, bytes) else str(v).encode() for v in stored
    )
    later = NOW + timedelta(days=1)
    with store.transaction() as conn:
        found = tokens.find_active(conn, token, later)
        assert found.token_id == tid and found.scopes == {"send", "read"}
        assert tokens.find_active(conn, token + "x", later) is None
        assert tokens.find_active(conn, token, NOW + timedelta(days=30)) is None  # expired
        assert tokens.list_tokens(conn)[0].last_used_at == later
        assert tokens.revoke(conn, tid, later) and not tokens.revoke(conn, tid, later)
        assert tokens.find_active(conn, token, later) is None


def test_a_request_writes_the_last_use_at_most_once_a_minute(store: Store) -> None:
    """Reading a token is a read; its last use is written when it is due (never used, or a
    minute since), so a busy case system's requests do not each commit a write. A revoked
    token is refused at once all the same."""
    token = secrets.token_urlsafe(32)
    with store.transaction() as conn:
        tid = tokens.create(conn, token, label="case-system", scopes=["send"], now=NOW)
    with store.read() as conn:
        found = tokens.find(conn, token, NOW)
    assert found is not None and tokens.needs_use_mark(found, NOW)
    with store.transaction() as conn:
        tokens.mark_used(conn, tid, NOW)
    soon, later = NOW + timedelta(seconds=59), NOW + tokens.USE_MARKED_EVERY
    with store.read() as conn:
        found = tokens.find(conn, token, soon)
    assert found is not None and found.last_used_at == NOW
    assert not tokens.needs_use_mark(found, soon) and tokens.needs_use_mark(found, later)
    with store.transaction() as conn:
        tokens.revoke(conn, tid, soon)
    with store.read() as conn:
        assert tokens.find(conn, token, soon) is None
