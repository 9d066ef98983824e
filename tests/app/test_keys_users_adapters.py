"""Key rotation (gateway.app.keys) and console users (gateway.app.users): each act taken by the
command line (``gateway keys|users``) and by the app function directly records the same audit
event (kind, actor, subjects but for the generation or name, details) and leaves the same
stored state (the key's manifest, the users table); the console's keys page lists what ``gateway
keys list`` lists. On SQLite and PostgreSQL (the audit trail and the users live there)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.app import keys as app_keys
from gateway.app import users as app_users
from gateway.app.context import AppContext, command_line_actor
from gateway.app.passwords import hash_password
from gateway.config import NodeConfig
from gateway.crypto.keys.generations import RevocationReason
from gateway.crypto.keys.keystore import KeyRole, KeyStore
from gateway.exchange.service import Actor, PermissionDenied, Role
from gateway.main import main as gateway
from gateway.store import Store
from gateway.web.console.sources import keystore_entries
from tests.app.surfaces import audit_of
from tests.crypto.rotation.conftest import demo_pki, make_node  # noqa: F401 - fixture used by name

ADMINISTRATOR = Actor(name="console:admin", roles=frozenset({Role.ADMINISTRATOR}))
OPERATOR = Actor(name="console:operator", roles=frozenset({Role.OPERATOR}))


@pytest.fixture
def node(demo_pki: Any, tmp_path: Path, store: Store) -> tuple[Path, Path]:  # noqa: F811
    """A node folder with the demo PKI's keys whose database is the test's store; returns the
    node.toml and the demo CA's folder."""
    made = make_node(demo_pki, tmp_path / "node")
    url = store.engine.url.render_as_string(hide_password=False)
    with made.config_path.open("a", encoding="utf-8") as toml:
        toml.write(f'\n[database]\nurl = "{url}"\n')
    return made.config_path, made.ca_dir


def _ctx(store: Store, config: Path, actor: Actor | None = None) -> AppContext:
    return AppContext(store, actor or command_line_actor(), NodeConfig.from_toml(config))


def _keys(config: Path) -> KeyStore:
    return KeyStore.from_config(NodeConfig.from_toml(config))


def _cli(*argv: str) -> None:
    assert gateway(list(argv)) == 0, argv


def _but(event: dict[str, Any], *details: str) -> dict[str, Any]:
    """The event without the subjects and the details that name which generation it was."""
    return {
        **event,
        "subjects": sorted(event["subjects"]),
        "details": {k: v for k, v in event["details"].items() if k not in details},
    }


def _status(keys: KeyStore, generation: int) -> tuple[str, str | None, str | None]:
    entry = next(
        e
        for e in keys.entries(datetime.now(UTC))
        if e.role == "seal" and e.generation == generation
    )
    manifest = keys.generations("seal")
    at = [a.at for a in manifest.activations if a.generation == generation]
    reason = manifest.generation(generation).reason
    return (
        entry.status,
        at[0].isoformat() if at and at[0] else None,
        reason.value if reason else None,
    )


def test_rotate_activate_revoke_record_the_same_from_cli_and_app(
    store: Store, node: tuple[Path, Path]
) -> None:
    config, ca = node
    ctx, keys = _ctx(store, config), _keys(config)

    # Rotate: generation 2 by the command line, 3 by the app; both pending, demo-certified.
    _cli("keys", "rotate", "seal", "--demo-ca", str(ca), "--config", str(config))
    made = app_keys.rotate(ctx, keys, KeyRole.SEAL, demo_ca=ca)
    assert made.generation == 3 and made.stem == "seal.3" and made.demo_ca
    assert _status(keys, 2)[0] == _status(keys, 3)[0] == "pending"
    by_cli, by_app = audit_of(store, "key.rotated")
    assert by_cli["subjects"] == {"key": "seal.2"} and by_app["subjects"] == {"key": "seal.3"}
    assert by_cli["actor"] == by_app["actor"] == command_line_actor().name
    assert by_cli["details"]["generation"] == 2 and by_app["details"]["generation"] == 3
    assert _but(by_cli, "generation", "certificate_sha256") == _but(
        by_app, "generation", "certificate_sha256"
    )
    assert by_cli["details"]["demo_ca"] is True and by_cli["details"]["location"] == "file"

    # Activate each at a future time (no directory here: publication is not checked).
    at = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    later = at + timedelta(days=1)
    _cli("keys", "activate", "seal", "--generation", "2", "--at", at.isoformat(),
         "--config", str(config))  # fmt: skip
    assert _status(keys, 2)[1] == at.isoformat()
    done = app_keys.activate(ctx, keys, KeyRole.SEAL, "", 3, later)
    assert done.stem == "seal.3" and done.directory_version == 0 and done.notes
    # A new plan replaces the future one, whichever adapter made either.
    assert (_status(keys, 2)[1], _status(keys, 3)[1]) == (None, later.isoformat())
    by_cli, by_app = audit_of(store, "key.activated")
    assert (by_cli["details"]["at"], by_app["details"]["at"]) == (
        at.isoformat(),
        later.isoformat(),
    )
    assert _but(by_cli, "generation", "at") == _but(by_app, "generation", "at")

    # Revoke both as superseded (nothing waits in the outbox): on the demo CA's CRL each.
    _cli("keys", "revoke", "seal", "--generation", "2", "--reason", "superseded",
         "--demo-ca", str(ca), "--config", str(config))  # fmt: skip
    revoked = app_keys.revoke(
        ctx,
        keys,
        KeyRole.SEAL,
        "",
        3,
        RevocationReason.SUPERSEDED,
        ctx.clock(),
        demo_ca=ca,
    )
    assert revoked.crl_serial and not revoked.still_active
    assert _status(keys, 2)[0] == _status(keys, 3)[0] == "revoked"
    assert _status(keys, 2)[2] == _status(keys, 3)[2] == "superseded"
    by_cli, by_app = audit_of(store, "key.revoked")
    assert by_cli["details"]["crl_serial"] and by_app["details"]["crl_serial"]
    assert _but(by_cli, "generation", "at", "crl_serial") == _but(
        by_app, "generation", "at", "crl_serial"
    )

    # Publish: the same certificates, the same event.
    _cli("keys", "publish", "--json", "--config", str(config))
    published = app_keys.publish(ctx, keys)
    by_cli, by_app = audit_of(store, "key.publication.exported")
    assert by_cli == by_app
    assert by_app["details"]["certificates"] == len(published)


def test_kek_rotation_and_rewrap_record_the_same_from_cli_and_app(
    store: Store, node: tuple[Path, Path]
) -> None:
    config, _ = node
    ctx, keys = _ctx(store, config), _keys(config)
    _cli("keys", "generate", "kek", "--config", str(config))
    _cli("keys", "rotate", "kek", "--config", str(config))
    second = app_keys.rotate_kek_ring(ctx, keys)
    by_cli, by_app = audit_of(store, "kek.rotated")
    assert by_app["subjects"] == {"kek_id": second.key_id}
    assert by_app["details"]["previous"] == by_cli["subjects"]["kek_id"]
    assert _but(by_cli, "previous", "active_from") == _but(by_app, "previous", "active_from")
    ring = [e for e in app_keys.list_keys(ctx, keys).ring]
    assert sorted(r.status for r in ring) == ["active", "retired", "retired"]

    _cli("keys", "rewrap", "--config", str(config))
    again = app_keys.rewrap(ctx, keys)
    assert again.result.complete and again.result.active == second.key_id
    assert len(again.retired) == 2
    by_cli, by_app = audit_of(store, "kek.rewrap.finished")
    assert by_cli == by_app  # nothing was stored, so both runs re-wrapped 0 keys

    # Destroying waits DESTROY_GRACE after the switch: refused now by either adapter.
    old = again.retired[0]
    assert gateway(["keys", "destroy-kek", old, "--config", str(config)]) != 0
    with pytest.raises(app_keys.KekRotationError):
        app_keys.destroy(ctx, keys, old)
    later = AppContext(
        store,
        command_line_actor(),
        ctx.config,
        clock=lambda: datetime.now(UTC) + app_keys.DESTROY_GRACE + timedelta(seconds=1),
    )
    assert app_keys.destroy(later, keys, old) == old
    [destroyed] = audit_of(store, "kek.destroyed")
    assert destroyed["subjects"] == {"kek_id": old}
    assert destroyed["details"] == {"location": "file"}


async def test_key_listing_is_the_same_from_cli_app_and_console(
    store: Store, node: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    config, ca = node
    _cli("keys", "rotate", "seal", "--demo-ca", str(ca), "--config", str(config))
    _cli("keys", "generate", "kek", "--config", str(config))
    capsys.readouterr()
    _cli("keys", "list", "--json", "--config", str(config))
    by_cli = {
        (e["role"], e["name"] or e.get("key_id", ""), e["status"])
        for e in json.loads(capsys.readouterr().out)
    }
    ctx, keys = _ctx(store, config), _keys(config)
    by_app = {(e.role, e.name, e.status) for e in app_keys.list_keys(ctx, keys).all_entries()}
    by_console = {(e.role, e.name, e.status) for e in await keystore_entries(ctx, keys)(
        ADMINISTRATOR
    )}  # fmt: skip
    assert by_cli == by_app == by_console
    assert ("seal", "", "pending") in by_app and any(r == "kek" for r, _, _ in by_app)

    # An operator may not read the key schedule: refused and recorded, whoever asks.
    with pytest.raises(PermissionDenied):
        await keystore_entries(ctx, keys)(OPERATOR)
    [denied] = audit_of(store, "access.denied")
    assert denied["actor"] == OPERATOR.name


def test_key_acts_need_the_administrator_role(store: Store, node: tuple[Path, Path]) -> None:
    config, ca = node
    keys = _keys(config)
    before = _status(keys, 1)
    with pytest.raises(PermissionDenied):
        app_keys.rotate(_ctx(store, config, OPERATOR), keys, KeyRole.SEAL, demo_ca=ca)
    with pytest.raises(PermissionDenied):
        app_keys.revoke(
            _ctx(store, config, OPERATOR),
            keys,
            KeyRole.SEAL,
            "",
            1,
            RevocationReason.KEY_COMPROMISE,
            datetime.now(UTC),
        )
    assert _status(keys, 1) == before and keys.generations("seal").next_number == 2
    denied = audit_of(store, "access.denied")
    assert [(e["actor"], e["subjects"]) for e in denied] == [
        (OPERATOR.name, {"subject": "seal"})
    ] * 2
    assert audit_of(store, "key.rotated") == audit_of(store, "key.revoked") == []


def test_users_add_disable_list_record_the_same_from_cli_and_app(
    store: Store, node_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = tmp_path / "password"
    password.write_text("длинный-пароль-оператора\n", encoding="utf-8")
    _cli("users", "add", "ivanova", "--role", "operator", "--role", "auditor",
         "--password-file", str(password), "--config", str(node_toml))  # fmt: skip
    ctx = _ctx(store, node_toml)
    digest = hash_password("длинный-пароль-оператора")
    app_users.add_user(ctx, "petrov", digest, [Role.AUDITOR, Role.OPERATOR])
    by_cli, by_app = audit_of(store, "user.added")
    assert by_cli["subjects"] == {"username": "ivanova"}
    assert by_app["subjects"] == {"username": "petrov"}
    assert _but(by_cli) == _but(by_app)
    assert by_app["details"] == {"roles": "auditor,operator"}

    _cli("users", "disable", "ivanova", "--config", str(node_toml))
    app_users.disable_user(ctx, "petrov")
    by_cli, by_app = audit_of(store, "user.disabled")
    assert _but(by_cli) == _but(by_app) and by_app["subjects"] == {"username": "petrov"}

    capsys.readouterr()
    _cli("users", "list", "--json", "--config", str(node_toml))
    listed = [(u["username"], u["roles"], u["disabled"]) for u in json.loads(
        capsys.readouterr().out)]  # fmt: skip
    assert listed == [(u.username, sorted(u.roles), u.disabled) for u in app_users.list_users(ctx)]
    assert listed == [
        ("ivanova", ["auditor", "operator"], True),
        ("petrov", ["auditor", "operator"], True),
    ]

    # Refusals: a taken name, an unknown user, a non-administrator; nothing more recorded.
    with pytest.raises(app_users.UserRefused) as taken:
        app_users.add_user(ctx, "petrov", digest, [Role.OPERATOR])
    assert taken.value.code == "USERNAME_TAKEN"
    assert gateway(["users", "disable", "nobody", "--config", str(node_toml)]) == 1
    with pytest.raises(app_users.UserRefused) as missing:
        app_users.disable_user(ctx, "nobody")
    assert missing.value.code == "USER_NOT_FOUND"
    with pytest.raises(PermissionDenied):
        app_users.add_user(_ctx(store, node_toml, OPERATOR), "sidorov", digest, [Role.OPERATOR])
    assert len(audit_of(store, "user.added")) == 2 and len(audit_of(store, "user.disabled")) == 2
    assert [e["actor"] for e in audit_of(store, "access.denied")] == [OPERATOR.name]


def test_destroy_kek_warns_of_what_is_sealed_under_it_and_records_it(
    store: Store, node: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #20: a stated read purpose sealed under the KEK dies with it (warned, counted in
    ``kek.destroyed``); a period key still under it blocks the destruction, named as such."""
    from gateway.crypto.keys.kek_ring import load_kek_ring
    from gateway.store import audit, messages
    from gateway.store.read_purposes import purpose_details
    from tests.store import factory

    config, _ = node
    ctx, keys = _ctx(store, config), _keys(config)
    _cli("keys", "generate", "kek", "--config", str(config))
    ring = load_kek_ring(keys)
    old = ring.active.key_id
    now = datetime.now(UTC)
    with store.transaction() as conn:
        cid = factory.new_id()
        factory.open_conversation(conn, now, cid)
        h = factory.header(cid, now)
        messages.insert_received(conn, h, factory.signed_document(h.message_id), ring, now)
        subjects = {"message_id": h.message_id}
        details = purpose_details(
            "case 12/2026", ring, kind="document.read", actor="reader1", subjects=subjects
        )
        audit.append(
            conn,
            now=now,
            actor="reader1",
            kind="document.read",
            subjects=subjects,
            details=details,
        )
    _cli("keys", "rotate", "kek", "--config", str(config))
    later = AppContext(
        store,
        command_line_actor(),
        ctx.config,
        clock=lambda: datetime.now(UTC) + app_keys.DESTROY_GRACE + timedelta(seconds=1),
    )
    capsys.readouterr()
    with pytest.raises(app_keys.KekRotationError, match=r"1 retention period key\(s\)"):
        app_keys.destroy(later, keys, old)
    assert gateway(["keys", "destroy-kek", old, "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "still wraps 1 retention period key(s)" in err
    assert "read purposes of 1 audit event(s)" in err

    _cli("keys", "rewrap", "--config", str(config))
    assert app_keys.destroy(later, keys, old) == old
    [destroyed] = audit_of(store, "kek.destroyed")
    assert destroyed["details"] == {"location": "file", "purposes_unreadable": 1}
