"""Every administrative act is reachable from the command line, the local API and the console,
and each surface goes through the same function of gateway.app: for each act, the audit events
the three record are compared — the same event codes, the same subjects' names and the same
details (but for the ids that name which hold, token, user or run it was) — with each surface's
own actor (``cli:<login>``, ``token:<label>``, ``console-admin``). On SQLite and PostgreSQL.

The key acts are compared without a demo CA (the CLI's rotation and revocation without
``--demo-ca``): a new generation gets a certificate request. gateway.app.acts lists the acts;
tests/app/test_admin_acts.py checks that each one the three surfaces offer has its case here."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.app import admin
from gateway.app import audit as app_audit
from gateway.app import keys as app_keys
from gateway.app import users as app_users
from gateway.app.audit_checkpoints import parse_checkpoint_line
from gateway.app.context import AppContext, command_line_actor, serving_context
from gateway.app.passwords import hash_password
from gateway.config import KeysSection, NodeConfig
from gateway.crypto.certificates import CertificateProfile, pem_bundle
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.kek_ring import read_ring, ring_manifest_path
from gateway.crypto.keys.keystore import KeyRole, KeyStore
from gateway.exchange.directory import build_directory_xml
from gateway.exchange.directory_signing import sign_directory
from gateway.exchange.service import Role
from gateway.main import main as gateway
from gateway.model.bodies import BodyLevel
from gateway.model.directory import (
    BodyCertificate,
    BodyName,
    CertificateRole,
    Directory,
    DirectoryBody,
)
from gateway.model.profiles import CIS_ENFORCEMENT, Participation
from gateway.store import Store
from gateway.store import purge as purge_store
from gateway.store.tables import purge_reports
from tests.app.surfaces import Surfaces as ThreeSurfaces
from tests.app.surfaces import (
    audit_of,
    compare_surfaces,
    last_seq,
    local_api,
    received_conversation,
    signed_in_console,
)
from tests.crypto.rotation.conftest import (  # noqa: F401 - fixture used by name
    BODY,
    PASSPHRASE,
    PEER,
    demo_pki,
    make_node,
)
from tests.doubles.local_service import LocalServiceDouble
from tests.web.console.conftest import CHEAP_HASHER

API_LABEL = "case-system"
CONSOLE_USER = "console-admin"
USER_PASSWORD = "Длинный-пароль-для-проверки-2027"


@pytest.fixture
def node_toml(
    demo_pki: Any,  # noqa: F811
    tmp_path: Path,
    store: Store,
    request: pytest.FixtureRequest,
) -> Path:
    """A node folder with its own copy of the demo PKI's keys (rotations stay in the test), on
    the test's store, with one catch-all retention policy."""
    made = make_node(demo_pki, tmp_path / "node")
    url = store.engine.url.render_as_string(hide_password=False)
    if request.node.callspec.params.get("name") == "directory-import":
        # The peer's seal signs the directories as their depositary. Only there: with a
        # directory file, activating a key checks that the directory in force lists it.
        text = made.config_path.read_text(encoding="utf-8").replace(
            "[trust]\n",
            f'[trust]\ndepositary_ca_file = "ca/{DemoCA.CERT_FILE}"\n'
            'directory_file = "directory.xml"\n',
        )
        made.config_path.write_text(text, encoding="utf-8")
    with made.config_path.open("a", encoding="utf-8") as toml:
        toml.write(
            f'\n[database]\nurl = "{url}"\n\n[[retention.policy]]\nname = "p"\n'
            'counts_from = "received"\nkeep = "1 year"\n'
        )
    # The node's KEK: a purge run destroys retention period keys under it.
    assert gateway(["keys", "generate", "kek", "--config", str(made.config_path)]) == 0
    return made.config_path


@dataclass
class Surfaces(ThreeSurfaces):
    """The node's three ways in, and what the key acts need."""

    ctx: AppContext
    """The command line's context, for setting up (its events are left out of each act's)."""
    keys: KeyStore
    peer_keys: Path
    """The peer's key folder: its seal signs the directories (as the depositary)."""


@pytest.fixture
async def surfaces(
    aiohttp_client: Any,
    store: Store,
    node_toml: Path,
    demo_pki: Any,  # noqa: F811
) -> Any:
    config = NodeConfig.from_toml(node_toml)
    keys = KeyStore.from_config(config)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    serving = serving_context(store, config, clock, keys)
    ctx = AppContext(store, command_line_actor(), config)

    api = await local_api(aiohttp_client, store, serving)
    token = admin.add_token(ctx, API_LABEL, [str(Role.ADMINISTRATOR), str(Role.AUDITOR)]).token

    console, csrf = await signed_in_console(
        aiohttp_client,
        store,
        node_toml,
        LocalServiceDouble(clock()),
        serving,
        (CONSOLE_USER, [Role.ADMINISTRATOR, Role.AUDITOR]),
    )
    peer_keys = demo_pki.body_dirs[PEER]
    yield Surfaces(store, node_toml, api, token, console, csrf, ctx, keys, peer_keys)
    keys.close()


# --- the acts: each takes the surfaces and one surface's name; a setup gives its subject --------

Act = Callable[[Surfaces, str, Any], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    kinds: tuple[str, ...]
    """The events the act records, in order."""
    setup: Callable[[Surfaces, str], Any]
    act: Act
    varying: frozenset[str] = frozenset()
    """Detail keys whose values name which one it was (a run's report digest, an expiry time)."""
    own_subject: bool = True
    """Each surface acts on its own subject (False: the node's one, e.g. its publication)."""


async def _place_hold(s: Surfaces, surface: str, cid: str) -> None:
    reason = "определение № А40-1/2027"
    if surface == "cli":
        s.cli("holds", "place", "--conversation", cid, "--reason", reason)
    elif surface == "api":
        await s.post_api(f"/conversations/{cid}/holds", {"reason": reason})
    else:
        await s.post_console("/admin/holds/place", {"conversation_id": cid, "reason": reason})


def _held(s: Surfaces, surface: str) -> str:
    cid = received_conversation(s.store)
    admin.place_hold(s.ctx, cid, "определение № 1")
    return cid


async def _release_hold(s: Surfaces, surface: str, cid: str) -> None:
    reason = "определение № 2 об отмене"
    if surface == "cli":
        s.cli("holds", "release", "--conversation", cid, "--reason", reason)
    elif surface == "api":
        await s.post_api(f"/conversations/{cid}/holds/release", {"reason": reason})
    else:
        await s.post_console("/admin/holds/release", {"conversation_id": cid, "reason": reason})


async def _add_token(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli(
            "tokens", "add", "--label", "reports", "--role", "operator", "--expires-in-days", "30"
        )
    elif surface == "api":
        await s.post_api(
            "/tokens", {"label": "reports", "roles": ["operator"], "expires_in_days": 30}
        )
    else:
        await s.post_console(
            "/admin/tokens", {"label": "reports", "roles": "operator", "expires_in_days": "30"}
        )


def _a_token(s: Surfaces, surface: str) -> int:
    return admin.add_token(s.ctx, f"old-{surface}", ["operator"]).token_id


async def _revoke_token(s: Surfaces, surface: str, token_id: int) -> None:
    if surface == "cli":
        s.cli("tokens", "revoke", str(token_id))
    elif surface == "api":
        await s.post_api(f"/tokens/{token_id}/revoke")
    else:
        await s.post_console(f"/admin/tokens/{token_id}/revoke", {})


async def _add_user(s: Surfaces, surface: str, username: str) -> None:
    if surface == "cli":
        password_file = s.config.parent / f"password-{surface}"
        password_file.write_text(USER_PASSWORD + "\n", encoding="utf-8")
        s.cli("users", "add", username, "--role", "operator", "--password-file", str(password_file))
    elif surface == "api":
        await s.post_api(
            "/users", {"username": username, "password": USER_PASSWORD, "roles": ["operator"]}
        )
    else:
        await s.post_console(
            "/admin/users",
            {"username": username, "password": USER_PASSWORD, "roles": "operator"},
        )


def _a_user(s: Surfaces, surface: str) -> str:
    username = f"clerk-{surface}"
    app_users.add_user(s.ctx, username, hash_password(USER_PASSWORD, CHEAP_HASHER), ["operator"])
    return username


async def _disable_user(s: Surfaces, surface: str, username: str) -> None:
    if surface == "cli":
        s.cli("users", "disable", username)
    elif surface == "api":
        await s.post_api(f"/users/{username}/disable")
    else:
        await s.post_console(f"/admin/users/{username}/disable", {})


def _new_seal(s: Surfaces, surface: str) -> int:
    """A new pending seal generation, certified by the node's demo CA."""
    ca = s.config.parent / "ca"
    return app_keys.rotate(s.ctx, s.keys, KeyRole.SEAL, demo_ca=ca).generation


KEY_AT = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0).isoformat()


async def _activate_key(s: Surfaces, surface: str, generation: int) -> None:
    if surface == "cli":
        s.cli("keys", "activate", "seal", "--generation", str(generation), "--at", KEY_AT)
    elif surface == "api":
        await s.post_api(f"/keys/seal/generations/{generation}/activate", {"at": KEY_AT})
    else:
        form = {"role": "seal", "generation": str(generation), "at": KEY_AT}
        await s.post_console("/admin/keys/activate", form)


async def _revoke_key(s: Surfaces, surface: str, generation: int) -> None:
    if surface == "cli":
        s.cli("keys", "revoke", "seal", "--generation", str(generation), "--reason", "superseded")
    else:  # remotely the generation's name is typed again (CONFIRMATION_MISMATCH otherwise)
        confirm = "seal" if generation == 1 else f"seal.{generation}"
        if surface == "api":
            body = {"reason": "superseded", "confirm": confirm}
            await s.post_api(f"/keys/seal/generations/{generation}/revoke", body)
        else:
            form = {"role": "seal", "generation": str(generation), "reason": "superseded"}
            await s.post_console("/admin/keys/revoke", form | {"confirm": confirm})


async def _rotate_key(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli("keys", "rotate", "seal")
    elif surface == "api":
        await s.post_api("/keys/seal/generations", {})
    else:
        await s.post_console("/admin/keys/rotate", {"role": "seal", "name": ""})


async def _publish_keys(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli("keys", "publish")
    elif surface == "api":
        await s.post_api("/keys/publications")
    else:
        await s.post_console("/admin/keys/publish", {})


def _kek_in_force(s: Surfaces, surface: str) -> str:
    """The id of the KEK in force: what the API and the console must confirm."""
    ring = app_keys.list_keys(s.ctx, s.keys).ring
    return next(r.key_id for r in ring if r.status == "active")


async def _rotate_kek(s: Surfaces, surface: str, kek_id: str) -> None:
    if surface == "cli":
        s.cli("keys", "rotate", "kek")
    elif surface == "api":
        await s.post_api("/kek/rotations", {"confirm": kek_id})
    else:
        await s.post_console("/admin/kek/rotate", {"confirm": kek_id, "at": "now"})


def _new_kek(s: Surfaces, surface: str) -> None:
    """A new KEK in force: each surface re-wraps under its own."""
    app_keys.rotate_kek_ring(s.ctx, s.keys)


async def _rewrap(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli("keys", "rewrap")
    elif surface == "api":
        await s.post_api("/kek/rewraps")
    else:
        await s.post_console("/admin/kek/rewrap", {})


async def _verify_audit(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli("audit", "verify")
    elif surface == "api":
        await s.post_api("/audit/verifications")
    else:
        await s.post_console("/admin/audit/verify", {})


async def _export_audit(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli("audit", "export", "--from", "1", "--out", str(s.config.parent / "audit.jsonl"))
        lines = (s.config.parent / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    elif surface == "api":
        response = await s.api.get(
            "/api/v1/audit/export",
            params={"from": "1"},
            headers={"Authorization": f"Bearer {s.api_token}"},
        )
        assert response.status == 200, await response.text()
        lines = (await response.text()).splitlines()
    else:
        response = await s.console.post(
            "/admin/audit/export", data={"from": "1", "to": "", "csrf_token": s.csrf}
        )
        assert response.status == 200, await response.text()
        lines = (await response.text()).splitlines()
    # The same export, which checks away from the node.
    assert app_audit.verify_export(lines).intact, lines[:2]


async def _checkpoint_audit(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        kept = s.config.parent / "checkpoints.jsonl"
        s.cli("audit", "checkpoint", "--out", str(kept))
        line = kept.read_text(encoding="utf-8").splitlines()[-1]
    elif surface == "api":
        line = (await s.post_api("/audit/checkpoints"))["line"]
    else:
        response = await s.console.post(
            "/admin/audit/checkpoint", data={"csrf_token": s.csrf}, allow_redirects=False
        )
        assert response.status == 200, await response.text()
        assert response.headers["Content-Disposition"].startswith("attachment;")
        line = (await response.text()).strip()
    # The same line, kept off the node, checks the trail there (gateway audit verify --checkpoint).
    kept_off = parse_checkpoint_line(line, surface)
    assert app_audit.verify(s.ctx, [(kept_off, surface)]).intact


def _requested_seal(s: Surfaces, surface: str) -> tuple[int, bytes]:
    """A new seal generation with a certificate request (no demo CA in the keys folder), and
    the certificate the CA (the node's demo CA standing in) issued for it: PEM with its
    issuer; DER alone for the API."""
    generation = app_keys.rotate(s.ctx, s.keys, KeyRole.SEAL).generation
    csr = x509.load_pem_x509_csr(s.keys.csr_path(KeyRole.SEAL, "", generation).read_bytes())
    ca = DemoCA.load(s.config.parent / "ca", s.keys.passphrase())
    cert = ca.issue_from_csr(
        csr, CertificateProfile(role="seal", body_id=BODY), now=datetime.now(UTC)
    )
    if surface == "api":
        return generation, cert.public_bytes(serialization.Encoding.DER)
    return generation, pem_bundle([cert, ca.certificate])


async def _import_certificate(s: Surfaces, surface: str, requested: tuple[int, bytes]) -> None:
    generation, data = requested
    if surface == "cli":
        path = s.config.parent / f"seal-{generation}.pem"
        path.write_bytes(data)
        s.cli("keys", "import", "seal", str(path), "--generation", str(generation))
    elif surface == "api":
        response = await s.api.post(
            f"/api/v1/keys/seal/generations/{generation}/certificate",
            data=data,
            headers={
                "Authorization": f"Bearer {s.api_token}",
                "Content-Type": "application/pkix-cert",
            },
        )
        assert response.status == 201, await response.text()
        assert (await response.json())["chain_length"] == 1
    else:
        form = {
            "csrf_token": s.csrf,
            "role": "seal",
            "name": "",
            "generation": str(generation),
            "certificate": io.BytesIO(data),
        }
        response = await s.console.post("/admin/keys/import", data=form, allow_redirects=False)
        assert response.status == 303, await response.text()
    assert s.keys.load(KeyRole.SEAL, generation=generation).certificate is not None


def _backdate_kek_switches(s: Surfaces) -> None:
    """Move every KEK switch of the ring back past DESTROY_GRACE, as if the grace had passed
    (the three surfaces act on the real clock)."""
    ring = read_ring(s.keys.directory)
    shift = app_keys.DESTROY_GRACE + timedelta(minutes=1)
    activations = tuple(
        replace(a, at=a.at - shift) if a.at is not None else a for a in ring.activations
    )
    ring_manifest_path(s.keys.directory).write_text(
        json.dumps(replace(ring, activations=activations).to_json()), encoding="utf-8"
    )


def _retired_kek(s: Surfaces, surface: str) -> str:
    """The KEK in force until now, retired: a new one rotated in, everything re-wrapped under
    it, the grace passed."""
    old = _kek_in_force(s, surface)
    app_keys.rotate_kek_ring(s.ctx, s.keys)
    assert app_keys.rewrap(s.ctx, s.keys).result.complete
    _backdate_kek_switches(s)
    return old


async def _destruction_notice(s: Surfaces, kek_id: str) -> dict[str, Any]:
    response = await s.api.get(
        f"/api/v1/kek/{kek_id}/destruction", headers={"Authorization": f"Bearer {s.api_token}"}
    )
    assert response.status == 200, await response.text()
    notice: dict[str, Any] = await response.json()
    return notice


async def _console_acknowledge(s: Surfaces, kek_id: str) -> str:
    """The confirmation page: the warnings, then the form carrying their acknowledge value."""
    page = await s.console.get("/admin/kek/destroy", params={"kek_id": kek_id})
    text = await page.text()
    assert page.status == 200, text
    assert "cannot be undone" in text  # the warnings are on the page
    found = re.search(r'id="kek-acknowledge" value="([0-9a-f]+)"', text)
    assert found, text
    return found.group(1)


async def _destroy_kek(s: Surfaces, surface: str, kek_id: str) -> None:
    if surface == "cli":
        s.cli("keys", "destroy-kek", kek_id)
    elif surface == "api":
        notice = await _destruction_notice(s, kek_id)
        body = {"confirm": kek_id, "acknowledge": notice["acknowledge"]}
        assert await s.post_api(f"/kek/{kek_id}/destruction", body) == {
            "kek_id": kek_id,
            "destroyed": True,
        }
    else:
        acknowledge = await _console_acknowledge(s, kek_id)
        form = {"kek_id": kek_id, "confirm": kek_id, "acknowledge": acknowledge}
        await s.post_console("/admin/kek/destroy", form)
    assert read_ring(s.keys.directory).member(kek_id).destroyed_at is not None


DIRECTORY_VERSIONS = {"cli": 1, "api": 2, "console": 3}


def _a_directory(s: Surfaces, surface: str, *, regional: int = 0) -> bytes:
    """Version 1, 2 or 3 of a directory of this node (and ``regional`` territorial bodies with
    its certificates), signed by its depositary (the peer's seal here)."""
    version = DIRECTORY_VERSIONS[surface]

    def der(role: KeyRole) -> bytes:
        return s.keys.load(role, generation=1).certificate.public_bytes(serialization.Encoding.DER)

    body = DirectoryBody(
        id=BODY,
        state="RU",
        level=BodyLevel.CENTRAL,
        names=(BodyName("ru", "ФССП России"),),
        endpoint="https://127.0.0.1:4443",
        certificates=(
            BodyCertificate(CertificateRole.SEAL, der(KeyRole.SEAL)),
            BodyCertificate(CertificateRole.TLS, der(KeyRole.TLS)),
            BodyCertificate(CertificateRole.ENCRYPTION, der(KeyRole.ENCRYPTION)),
        ),
        calendar="RU",
        participations=(Participation("RU", CIS_ENFORCEMENT.id, date(2026, 1, 1)),),
    )
    issued = datetime.now(UTC) - timedelta(minutes=10 - version)
    regions: tuple[DirectoryBody, ...] = ()
    if regional:
        ca = DemoCA.load(s.config.parent / "ca", s.keys.passphrase())  # once: its key is sealed
        regions = tuple(_regional_body(ca, body, f"RU-FSSP-R{n:02d}") for n in range(regional))
    directory = Directory(
        version=version, issued_at=issued, depositary=PEER, bodies=(body, *regions)
    )
    section = KeysSection(dir=s.peer_keys)
    peer = KeyStore(section, PEER, environ={section.passphrase_env: PASSPHRASE.decode()})
    try:
        return sign_directory(build_directory_xml(directory), peer.seal())
    finally:
        peer.close()


def _regional_body(ca: DemoCA, central: DirectoryBody, body_id: str) -> DirectoryBody:
    """A territorial body like ``central``, with its own certificates from the demo CA."""
    now = datetime.now(UTC)

    def der(role: CertificateRole) -> bytes:
        profile = CertificateProfile(
            role=role.value,
            body_id=body_id,
            ip_addresses=("127.0.0.1",) if role is CertificateRole.TLS else (),
        )
        issued = ca.issue(ec.generate_private_key(ec.SECP256R1()).public_key(), profile, now=now)
        return issued.public_bytes(serialization.Encoding.DER)

    return replace(
        central,
        id=body_id,
        level=BodyLevel.TERRITORIAL,
        certificates=tuple(BodyCertificate(c.role, der(c.role)) for c in central.certificates),
    )


async def _post_directory(s: Surfaces, data: bytes) -> Any:
    return await s.api.post(
        "/api/v1/directory",
        data=data,
        headers={"Authorization": f"Bearer {s.api_token}", "Content-Type": "application/xml"},
    )


async def _import_directory(s: Surfaces, surface: str, data: bytes) -> None:
    if surface == "cli":
        path = s.config.parent / f"directory-{surface}.xml"
        path.write_bytes(data)
        s.cli("directory", "import", str(path))
    elif surface == "api":
        response = await _post_directory(s, data)
        assert response.status == 201, await response.text()
    else:
        # The token first, as the console's form has it: the file is read after it.
        form = {"csrf_token": s.csrf, "directory": io.BytesIO(data)}
        response = await s.console.post("/admin/directory/import", data=form, allow_redirects=False)
        assert response.status == 303, await response.text()


async def _run_purge(s: Surfaces, surface: str, _: Any) -> None:
    if surface == "cli":
        s.cli("purge")
    elif surface == "api":
        await s.post_api("/purge-runs")
    else:
        await s.post_console("/admin/purge-runs", {})


CASES = {
    "hold-place": Case(
        ("hold.placed",), lambda s, surface: received_conversation(s.store), _place_hold
    ),
    "hold-release": Case(("hold.released",), _held, _release_hold),
    "token-create": Case(
        ("token.created",), lambda s, surface: None, _add_token, frozenset({"expires_at"})
    ),
    "token-revoke": Case(("token.revoked",), _a_token, _revoke_token),
    "user-add": Case(("user.added",), lambda s, surface: f"clerk-{surface}", _add_user),
    "user-disable": Case(("user.disabled",), _a_user, _disable_user),
    "key-activate": Case(("key.activated",), _new_seal, _activate_key, frozenset({"generation"})),
    "key-revoke": Case(("key.revoked",), _new_seal, _revoke_key, frozenset({"generation", "at"})),
    "key-rotate": Case(
        ("key.rotated",), lambda s, surface: None, _rotate_key, frozenset({"generation"})
    ),
    "key-publish": Case(
        ("key.publication.exported",),
        lambda s, surface: None,
        _publish_keys,
        own_subject=False,
    ),
    "kek-rotate": Case(
        ("kek.rotated",), _kek_in_force, _rotate_kek, frozenset({"previous", "active_from"})
    ),
    "kek-rewrap": Case(("kek.rewrap.finished",), _new_kek, _rewrap),
    "kek-destroy": Case(("kek.destroyed",), _retired_kek, _destroy_kek),
    "key-import": Case(
        ("key.certificate.imported",),
        _requested_seal,
        _import_certificate,
        frozenset({"generation", "certificate_sha256"}),
    ),
    "audit-checkpoint": Case(
        ("audit.checkpoint",),
        lambda s, surface: None,
        _checkpoint_audit,
        frozenset({"seq", "hash"}),
    ),
    "audit-verify": Case(
        ("audit.verified",),
        lambda s, surface: None,
        _verify_audit,
        frozenset({"events_checked"}),
        own_subject=False,
    ),
    "audit-export": Case(
        ("audit.exported",),
        lambda s, surface: None,
        _export_audit,
        frozenset({"events", "to_seq"}),
        own_subject=False,
    ),
    "directory-import": Case(
        ("directory.imported",),
        _a_directory,
        _import_directory,
        frozenset({"version"}),
        own_subject=False,
    ),
    "purge-run": Case(
        ("purge.started", "purge.finished"),
        lambda s, surface: None,
        _run_purge,
        frozenset({"report_sha256"}),
    ),
}

ACTORS = {"api": f"token:{API_LABEL}", "console": CONSOLE_USER}
NO_SUCH_RUN = "00000000-0000-4000-8000-000000000000"
"""A well-formed id of a purge run the node never made."""


@pytest.mark.parametrize("name", list(CASES))
async def test_each_act_records_the_same_from_cli_api_and_console(
    surfaces: Surfaces, name: str
) -> None:
    case = CASES[name]
    await compare_surfaces(surfaces, case, ACTORS, 3 if case.own_subject else 1)


async def test_rotating_the_kek_remotely_must_name_the_one_in_force(surfaces: Surfaces) -> None:
    """The API and the console refuse a KEK rotation whose ``confirm`` does not name the KEK in
    force (a replayed or mistaken request): nothing rotates, nothing is recorded."""
    in_force = _kek_in_force(surfaces, "api")
    before = last_seq(surfaces.store)
    response = await surfaces.api.post(
        "/api/v1/kek/rotations",
        json={"confirm": "kek-0000000000000000"},
        headers={"Authorization": f"Bearer {surfaces.api_token}"},
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "KEY_REFUSED" and error["rule"] == "CONFIRMATION_MISMATCH"
    assert in_force in error["message"]  # says which to type
    page = await surfaces.console.post(
        "/admin/kek/rotate", data={"confirm": "", "csrf_token": surfaces.csrf}
    )
    assert page.status == 422
    assert "KEK не заменён" in await page.text()
    assert audit_of(surfaces.store, "kek.rotated", after=before) == []
    assert _kek_in_force(surfaces, "api") == in_force


async def test_revoking_a_key_remotely_must_name_the_generation(surfaces: Surfaces) -> None:
    """The API and the console revoke a generation only when ``confirm`` names it as its key
    files are named (``seal.2``): another name (a mistaken number, a replay), or none, revokes
    nothing and records nothing — a revocation cannot be undone."""
    generation = _new_seal(surfaces, "api")
    before = last_seq(surfaces.store)
    auth = {"Authorization": f"Bearer {surfaces.api_token}"}
    path = f"/api/v1/keys/seal/generations/{generation}/revoke"
    response = await surfaces.api.post(
        path, json={"reason": "keyCompromise", "confirm": "seal"}, headers=auth
    )
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "KEY_REFUSED" and error["rule"] == "CONFIRMATION_MISMATCH"
    assert f"seal.{generation}" in error["message"]  # says what to type
    response = await surfaces.api.post(path, json={"reason": "keyCompromise"}, headers=auth)
    assert response.status == 400 and "confirm" in (await response.json())["error"]["message"]
    form = {"role": "seal", "generation": str(generation), "reason": "keyCompromise"}
    for typed in ({}, {"confirm": "seal"}):
        page = await surfaces.console.post(
            "/admin/keys/revoke", data=form | typed | {"csrf_token": surfaces.csrf}
        )
        assert page.status == 422
        assert "Поколение ключа не отозвано" in await page.text()
    assert audit_of(surfaces.store, "key.revoked", after=before) == []
    fresh = KeyStore.from_config(surfaces.ctx.config)  # the manifest as on disk
    assert fresh.generations("seal").generation(generation).revoked_at is None


async def test_destroying_a_kek_remotely_must_acknowledge_its_warnings(surfaces: Surfaces) -> None:
    """The API and the console destroy a KEK only when ``confirm`` names it and ``acknowledge``
    is the value of the warnings as they are now: a request that skipped them, or names another
    KEK, is refused with the warnings; the KEK in force is refused whatever is sent. Nothing is
    destroyed, nothing recorded."""
    retired = _retired_kek(surfaces, "api")
    in_force = _kek_in_force(surfaces, "api")
    notice = await _destruction_notice(surfaces, retired)
    assert any("cannot be undone" in w for w in notice["warnings"])
    before = last_seq(surfaces.store)
    auth = {"Authorization": f"Bearer {surfaces.api_token}"}

    for body in (
        {"confirm": retired, "acknowledge": "0" * 32},  # the warnings not read
        {"confirm": in_force, "acknowledge": notice["acknowledge"]},  # another KEK named
    ):
        response = await surfaces.api.post(
            f"/api/v1/kek/{retired}/destruction", json=body, headers=auth
        )
        assert response.status == 422
        error = (await response.json())["error"]
        assert error["code"] == "KEY_REFUSED" and error["rule"] == "CONFIRMATION_MISMATCH"
        assert error["warnings"] == notice["warnings"]
        assert error["acknowledge"] == notice["acknowledge"]

    # The KEK in force: its own acknowledge value does not make it destroyable.
    own = await _destruction_notice(surfaces, in_force)
    response = await surfaces.api.post(
        f"/api/v1/kek/{in_force}/destruction",
        json={"confirm": in_force, "acknowledge": own["acknowledge"]},
        headers=auth,
    )
    assert response.status == 422
    assert "is the active one" in (await response.json())["error"]["message"]

    # The console: a wrong id typed shows the confirmation page again, with the warnings.
    acknowledge = await _console_acknowledge(surfaces, retired)
    page = await surfaces.console.post(
        "/admin/kek/destroy",
        data={
            "kek_id": retired,
            "confirm": "kek-0000000000000000",
            "acknowledge": acknowledge,
            "csrf_token": surfaces.csrf,
        },
    )
    assert page.status == 422
    text = await page.text()
    assert "KEK не уничтожен" in text and "cannot be undone" in text
    for kek_id in ("", "../kek", "kek-0000000000000000"):  # none, malformed, not in the ring
        page = await surfaces.console.get("/admin/kek/destroy", params={"kek_id": kek_id})
        assert page.status == 422, kek_id
        assert 'id="kek-destroy-form"' not in await page.text()

    assert audit_of(surfaces.store, "kek.destroyed", after=before) == []
    ring = read_ring(surfaces.keys.directory)
    assert ring.member(retired).destroyed_at is None and ring.member(in_force).destroyed_at is None


async def test_a_bad_certificate_is_refused_naming_the_field(surfaces: Surfaces) -> None:
    """Not a certificate, one for another key, or a body over the limit: refused with the
    field and what to send; the console refuses a form without its file. Nothing recorded."""
    generation, _ = _requested_seal(surfaces, "api")
    other, other_cert = _requested_seal(surfaces, "cli")  # the certificate of generation `other`
    before = last_seq(surfaces.store)
    url = f"/api/v1/keys/seal/generations/{generation}/certificate"
    auth = {"Authorization": f"Bearer {surfaces.api_token}"}

    response = await surfaces.api.post(url, data=b"not a certificate", headers=auth)
    assert response.status == 422
    message = (await response.json())["error"]["message"]
    assert message.startswith("body (the certificate): no certificate in it")
    assert "PEM" in message and "DER" in message

    response = await surfaces.api.post(url, data=other_cert, headers=auth)
    assert response.status == 422
    assert "issued for another key" in (await response.json())["error"]["message"]

    too_large = b"0" * (app_keys.MAX_CERTIFICATE_BYTES + 1)
    response = await surfaces.api.post(url, data=too_large, headers=auth)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "BODY_TOO_LARGE"

    page = await surfaces.console.post(
        "/admin/keys/import",
        data={"role": "seal", "generation": str(other), "csrf_token": surfaces.csrf},
    )
    assert page.status == 422
    assert "Выберите файл сертификата" in await page.text()
    assert audit_of(surfaces.store, "key.certificate.imported", after=before) == []


async def test_a_checkpoint_can_be_downloaded_as_its_file(surfaces: Surfaces) -> None:
    """``Accept: application/jsonl``: the line itself, as the file `--out` writes, to save."""
    response = await surfaces.api.post(
        "/api/v1/audit/checkpoints",
        headers={"Authorization": f"Bearer {surfaces.api_token}", "Accept": "application/jsonl"},
    )
    assert response.status == 201
    assert response.content_type == "application/jsonl"
    [line] = (await response.text()).splitlines()
    checkpoint = parse_checkpoint_line(line, "download")
    [recorded] = audit_of(surfaces.store, "audit.checkpoint")
    number = recorded["subjects"]["checkpoint_id"]
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="audit-checkpoint-{number}.jsonl"'
    )
    assert recorded["details"] == {"seq": checkpoint.seq, "hash": checkpoint.hash.hex()}
    assert app_audit.verify(surfaces.ctx, [(checkpoint, "download")]).intact


@pytest.mark.parametrize("name", ["directory-import"])  # a node that takes directories
async def test_a_directory_larger_than_a_form_is_imported_from_the_console(
    surfaces: Surfaces, name: str
) -> None:
    """A real directory (dozens of bodies, megabytes) is far over the 64 KiB the console reads
    of a form whole: its form is streamed after the token, the file held to the directory's
    own bound, and installed as from the command line."""
    from gateway.web.console.auth import MAX_FORM_BYTES

    data = _a_directory(surfaces, "console", regional=60)
    assert len(data) > 2 * MAX_FORM_BYTES
    before = last_seq(surfaces.store)
    await _import_directory(surfaces, "console", data)
    (event,) = audit_of(surfaces.store, "directory.imported", after=before)
    assert event["details"]["version"] == DIRECTORY_VERSIONS["console"]


@pytest.mark.parametrize("name", ["directory-import"])
async def test_a_directory_over_its_limit_is_refused_on_every_surface(
    surfaces: Surfaces, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over MAX_DIRECTORY_BYTES: the command line refuses it naming the limit, the API answers
    413 on the declared length, the console refuses the form naming the limit. Nothing is
    installed or recorded."""
    from gateway.model.limits import MAX_DIRECTORY_BYTES

    before = last_seq(surfaces.store)
    too_large = b"<" + b"x" * MAX_DIRECTORY_BYTES
    path = surfaces.config.parent / "directory-too-large.xml"
    path.write_bytes(too_large)
    argv = ["directory", "import", "--config", str(surfaces.config), str(path)]
    assert gateway(argv) != 0
    assert f"больше {MAX_DIRECTORY_BYTES} байт" in capsys.readouterr().err
    assert (await _post_directory(surfaces, too_large)).status == 413
    page = await surfaces.console.post(
        "/admin/directory/import",
        data={"csrf_token": surfaces.csrf, "directory": io.BytesIO(too_large)},
    )
    assert page.status == 413
    assert f"больше {MAX_DIRECTORY_BYTES} байт" in await page.text()
    assert audit_of(surfaces.store, "directory.imported", after=before) == []


async def _report_verdicts(s: Surfaces, run_id: str, capsys: Any) -> tuple[Any, ...]:
    """What `purge verify-report`, the API and the console say of one run's report."""
    capsys.readouterr()
    code = gateway(["purge", "verify-report", "--config", str(s.config), run_id])
    cli = (code, capsys.readouterr().out)
    answer = await s.api.post(
        f"/api/v1/purge-runs/{run_id}/report-verifications",
        headers={"Authorization": f"Bearer {s.api_token}"},
    )
    api = (answer.status, await answer.json())
    posted = await s.console.post(
        f"/admin/purge-runs/{run_id}/verification",
        data={"csrf_token": s.csrf},
        allow_redirects=False,
    )
    if posted.status != 303:
        return cli, api, (posted.status, await posted.text())
    page = await s.console.get("/admin/holds")
    flash = re.search(r'id="flash"[^>]*>([^<]*)<', await page.text())
    return cli, api, (posted.status, flash.group(1) if flash else "")


async def test_a_purge_report_is_judged_the_same_on_every_surface(
    surfaces: Surfaces, capsys: pytest.CaptureFixture[str]
) -> None:
    """`gateway purge verify-report`, the API's report verification and the console's
    «Проверить подпись» go through gateway.app.purge.check_report and agree: confirmed for a
    fresh run (whose files to check off the node the API gives as `purge report --out` does),
    not confirmed once the stored report is edited (naming why), and no report for a run the
    node never made."""
    await surfaces.post_api("/purge-runs")
    with surfaces.store.read() as conn:
        (run,) = purge_store.list_runs(conn, 1)
    # The files to check it by off the node: the API gives what `purge report --out` writes.
    out = surfaces.config.parent / "report-files"
    surfaces.cli("purge", "report", run.run_id, "--out", str(out))
    answer = await surfaces.api.get(
        f"/api/v1/purge-runs/{run.run_id}/report",
        headers={"Authorization": f"Bearer {surfaces.api_token}"},
    )
    files = await answer.json()
    assert answer.status == 200, files
    assert files["report"].encode() == (out / "report.json").read_bytes()
    assert base64.b64decode(files["signature"]) == (out / "report.sig").read_bytes()
    assert files["certificate"].encode() == (out / "seal.pem").read_bytes()
    missing = await surfaces.api.get(
        f"/api/v1/purge-runs/{NO_SUCH_RUN}/report",
        headers={"Authorization": f"Bearer {surfaces.api_token}"},
    )
    assert missing.status == 404

    cli, api, console = await _report_verdicts(surfaces, run.run_id, capsys)
    assert cli[0] == 0 and "подпись печатью верна" in cli[1], cli
    assert api[0] == 200 and api[1]["confirmed"] is True and api[1]["reason"] == "", api
    assert api[1]["report"]["run_id"] == run.run_id
    assert console == (303, f"Отчёт запуска {run.run_id}: подпись печатью верна, удалено 0."), (
        console
    )

    with surfaces.store.transaction() as conn:
        conn.execute(
            purge_reports.update()
            .where(purge_reports.c.run_id == run.run_id)
            .values(report=sa.func.replace(purge_reports.c.report, '"purged":0', '"purged":9'))
        )
    cli, api, console = await _report_verdicts(surfaces, run.run_id, capsys)
    assert cli[0] == 1 and "НЕ ПОДТВЕРЖДЁН" in cli[1] and "does not verify" in cli[1], cli
    assert api[0] == 200 and api[1]["confirmed"] is False, api
    assert "does not verify" in api[1]["reason"]
    assert console[0] == 303 and "НЕ ПОДТВЕРЖДЁН" in console[1], console

    cli, api, console = await _report_verdicts(surfaces, NO_SUCH_RUN, capsys)
    assert cli[0] == 1 and "no report stored" in cli[1], cli
    assert api[0] == 404 and api[1]["error"]["code"] == "NOT_FOUND", api
    assert console[0] == 404, console
