"""KEK rotation: the ring of key-encryption keys in the keys folder, re-wrapping, destruction.

Theory of operation
-------------------
The keys folder holds the **ring**: every KEK file (``kek.key``, the original, and
``kek-<hex>.key`` for each rotation) and, once a KEK was rotated, the manifest
``kek.ring.json`` naming each KEK (its file or its label on the PKCS#11 token), when each
became active, and which were destroyed. No configuration change is needed: the node reads
the ring from the folder (:func:`load_kek_ring`).

Rotation, in order (each step is safe to repeat, and a crash between two steps loses nothing):

1. :func:`rotate_kek` makes a new KEK (file or token) and schedules it active at ``at``
   (default: now). Every process holding a :class:`LiveKekRing` notices within
   :data:`RING_REFRESH` (or at once, when it meets a data key wrapped under a KEK it does not
   know yet) and from then on wraps new data keys under the new KEK.
2. ``gateway.store.keys.rewrap_all`` re-wraps every stored data key in batches, each its own
   transaction (``gateway.store.keys.rewrap_batch``). Killed half-way, it is simply run again:
   what is done is committed, the rest still names the old KEK, which is still loaded.
3. :func:`destroy_kek` removes the old KEK once ``gateway.store.keys.kek_usage`` shows that no
   data key and no store secret is wrapped under it and it left service more than
   :data:`DESTROY_GRACE` ago. Backups made while it was in use then become unreadable: intended
   (crypto-shredding). The store runs the SQL of steps 2 and 3; this module holds no SQL.

Exception tree: :class:`KekRotationError` (a ``ConfigurationError``) for every refusal.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.crypto import at_rest, certificates
from gateway.crypto.at_rest import KeyEncryptionKey
from gateway.crypto.files import check_format, locked, parse_json, write_json_atomically
from gateway.crypto.keys import kek, schedule
from gateway.crypto.keys.generations import ACTIVATION_SKEW
from gateway.crypto.keys.kek import KekRing, TokenKek, generate_token_kek
from gateway.crypto.keys.pkcs11 import TokenError, TokenSession
from gateway.model.problems import ConfigurationError

if TYPE_CHECKING:
    from gateway.crypto.keys.keystore import KeyStore

_log = logging.getLogger(__name__)

RING_MANIFEST = "kek.ring.json"
RING_FORMAT = "gateway-kek-ring"
RING_VERSION = 1
KEK_FILE_GLOB = "kek*.key"
"""Every file of the folder matching this is a KEK of the ring (``kek.key``, ``kek-….key``)."""
MAX_RING_MANIFEST_BYTES = 64 * 1024
MAX_RING_SIZE = 32
"""KEKs in one ring: each file KEK costs ~0.3 s and 128 MiB of scrypt to unlock at start-up;
a ring this large means old KEKs were never destroyed."""
RING_REFRESH = timedelta(seconds=5)
"""A running process re-reads the ring manifest at most this often (a ``stat``) and switches
to a newly activated KEK within this delay."""
DESTROY_GRACE = timedelta(minutes=1)
"""A KEK that left service less than this ago may still be wrapping new data keys in a process
that has not refreshed its ring yet; it is not destroyed before (12 × :data:`RING_REFRESH`)."""


class KekRotationError(ConfigurationError):
    """A KEK rotation step was refused; the message says why and what to do."""


# --- the ring manifest -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingMember:
    key_id: str
    file: str | None = None
    """File name in the keys folder (``kek-….key``); None for a token KEK."""
    token_label: str | None = None
    """Label on the node's token ([keys] pkcs11_token_label); None for a file KEK."""
    created_at: datetime | None = None
    destroyed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RingActivation:
    key_id: str
    at: datetime | None
    """None: from the beginning (the KEK the node had before its first rotation)."""


@dataclass(frozen=True, slots=True)
class RingManifest:
    members: tuple[RingMember, ...]
    activations: tuple[RingActivation, ...]

    def member(self, key_id: str) -> RingMember:
        for m in self.members:
            if m.key_id == key_id:
                return m
        raise KekRotationError(
            f"KEK {key_id!r} is not in the ring ({', '.join(m.key_id for m in self.members)})"
        )

    def active_at(self, at: datetime) -> str | None:
        chosen = schedule.current(self.activations, at)
        return None if chosen is None else chosen.key_id

    def next_switch_after(self, at: datetime) -> datetime | None:
        """The first scheduled activation after ``at`` (a process must look again then)."""
        later = [a.at for a in self.activations if a.at is not None and a.at > at]
        return min(later) if later else None

    def left_service_at(self, key_id: str, at: datetime) -> datetime | None:
        """When ``key_id`` stopped being active (None: active, or never was)."""
        return schedule.left_service(self.activations, at, lambda a: a.key_id == key_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RING_FORMAT,
            "version": RING_VERSION,
            "keks": [
                {
                    "key_id": m.key_id,
                    "file": m.file,
                    "token_label": m.token_label,
                    "created_at": schedule.time_text(m.created_at),
                    "destroyed_at": schedule.time_text(m.destroyed_at),
                }
                for m in self.members
            ],
            "activations": [
                {"key_id": a.key_id, "at": schedule.time_text(a.at)} for a in self.activations
            ],
        }

    @classmethod
    def from_json(cls, doc: Any, where: str) -> RingManifest:
        doc = check_format(
            doc, where, format=RING_FORMAT, version=RING_VERSION, error=KekRotationError
        )
        if set(doc) - {"format", "version", "keks", "activations"}:
            raise KekRotationError(f"{where}: unknown fields {sorted(set(doc) - {'format'})}")
        keks, acts = doc.get("keks"), doc.get("activations")
        if not isinstance(keks, list) or not 1 <= len(keks) <= MAX_RING_SIZE:
            raise KekRotationError(f"{where}: 'keks' must list 1..{MAX_RING_SIZE} KEKs")
        if not isinstance(acts, list) or len(acts) > 10 * MAX_RING_SIZE:
            raise KekRotationError(f"{where}: 'activations' must be a short list")
        members = []
        for i, item in enumerate(keks):
            at = f"{where}: keks[{i}]"
            if not isinstance(item, dict) or set(item) - {
                "key_id",
                "file",
                "token_label",
                "created_at",
                "destroyed_at",
            }:
                raise KekRotationError(f"{at}: must be an object with known fields")
            key_id = item.get("key_id")
            if not isinstance(key_id, str) or not kek.KEY_ID_PATTERN.fullmatch(key_id):
                raise KekRotationError(f"{at}.key_id is missing or malformed")
            file, label = item.get("file"), item.get("token_label")
            if (file is None) == (label is None):
                raise KekRotationError(f"{at}: give exactly one of 'file' and 'token_label'")
            if file is not None and (
                not isinstance(file, str) or "/" in file or not Path(file).match(KEK_FILE_GLOB)
            ):
                raise KekRotationError(f"{at}.file must be a file name like kek-….key")
            if label is not None and (
                not isinstance(label, str) or not kek.KEY_ID_PATTERN.fullmatch(label)
            ):
                raise KekRotationError(f"{at}.token_label is malformed")
            members.append(
                RingMember(
                    key_id,
                    file,
                    label,
                    schedule.parse_time(
                        item.get("created_at"), f"{at}.created_at", KekRotationError
                    ),
                    schedule.parse_time(
                        item.get("destroyed_at"), f"{at}.destroyed_at", KekRotationError
                    ),
                )
            )
        ids = [m.key_id for m in members]
        if len(set(ids)) != len(ids):
            raise KekRotationError(f"{where}: a KEK id is listed twice")
        activations = []
        for i, item in enumerate(acts):
            at = f"{where}: activations[{i}]"
            if not isinstance(item, dict) or set(item) != {"key_id", "at"}:
                raise KekRotationError(f"{at}: must be {{'key_id': …, 'at': …}}")
            if item["key_id"] not in ids:
                raise KekRotationError(f"{at}.key_id {item['key_id']!r} is not in 'keks'")
            activations.append(
                RingActivation(
                    item["key_id"], schedule.parse_time(item["at"], f"{at}.at", KekRotationError)
                )
            )
        return cls(tuple(members), tuple(activations))


def ring_manifest_path(directory: Path) -> Path:
    return Path(directory) / RING_MANIFEST


def _file_key_id(path: Path) -> str:
    """The id a KEK file declares (in clear; authenticated when the file is loaded)."""
    try:
        raw = path.read_bytes()
        doc = json.loads(raw) if len(raw) <= kek.KEK_FILE_MAX_BYTES else None
    except (OSError, ValueError):
        doc = None
    key_id = doc.get("key_id") if isinstance(doc, dict) else None
    if not isinstance(key_id, str) or not kek.KEY_ID_PATTERN.fullmatch(key_id):
        raise KekRotationError(f"{path}: not a KEK file (no valid 'key_id')")
    return key_id


def read_ring(directory: Path) -> RingManifest:
    """The ring as the folder describes it. Without a manifest: the KEK files, the only one
    active (several files and no manifest is refused: which one is active would be a guess)."""
    directory = Path(directory)
    path = ring_manifest_path(directory)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        files = sorted(directory.glob(KEK_FILE_GLOB))
        if not files:
            raise KekRotationError(
                f"no KEK in {directory}: run `gateway keys generate kek --config NODE.toml`"
            ) from None
        if len(files) > 1:
            raise KekRotationError(
                f"{directory} holds {len(files)} KEK files but no {RING_MANIFEST} naming the "
                "active one; restore the manifest from the keys' backup"
            ) from None
        key_id = _file_key_id(files[0])
        return RingManifest(
            (RingMember(key_id, file=files[0].name),), (RingActivation(key_id, None),)
        )
    doc = parse_json(
        path,
        raw,
        limit=MAX_RING_MANIFEST_BYTES,
        what="a ring manifest",
        remedy="restore it from the keys' backup",
        error=KekRotationError,
    )
    return RingManifest.from_json(doc, str(path))


def _update_ring(directory: Path, change: Callable[[RingManifest], RingManifest]) -> RingManifest:
    with locked(directory, RING_MANIFEST):
        updated = change(read_ring(directory))
        write_json_atomically(ring_manifest_path(directory), updated.to_json())
        return updated


# --- loading the ring ---------------------------------------------------------------------------


def _token(keystore: KeyStore) -> TokenSession:
    try:
        return keystore.token()
    except TokenError as exc:
        raise KekRotationError(str(exc)) from None


def _load_member(keystore: KeyStore, member: RingMember) -> KeyEncryptionKey:
    if member.file is not None:
        loaded = kek.load_file_kek(keystore.directory / member.file, keystore.passphrase())
        if loaded.key_id != member.key_id:
            raise KekRotationError(
                f"{member.file} holds KEK {loaded.key_id!r} but {RING_MANIFEST} says "
                f"{member.key_id!r}; restore the keys folder from one backup"
            )
        return loaded
    assert member.token_label is not None
    return TokenKek(_token(keystore), member.token_label)


class LiveKekRing(KekRing):
    """A :class:`KekRing` that follows the keys folder: it loads KEKs added by a rotation and
    switches the active one at its scheduled time, without restart.

    It looks at the manifest at most every :data:`RING_REFRESH`, at a scheduled switch, and
    whenever asked for a KEK it does not hold (a data key another process wrapped under a KEK
    activated a moment ago): an old row is never unreadable because of a rotation.
    """

    def __init__(self, keystore: KeyStore, clock: Callable[[], datetime]) -> None:
        self._keystore = keystore
        self._clock = clock
        self._refresh_lock = threading.RLock()
        self._signature: tuple[int, ...] | None = None
        self._checked = 0.0
        self._next_switch: datetime | None = None
        self.manifest = read_ring(keystore.directory)
        keks = self._load_new({}, self.manifest)
        super().__init__(keks.values(), self._active_id_at(self.manifest, clock()))
        self._signature = self._stat()
        self._checked = time.monotonic()
        self._next_switch = self.manifest.next_switch_after(clock())

    def _stat(self) -> tuple[int, ...] | None:
        try:
            st = ring_manifest_path(self._keystore.directory).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load_new(
        self, have: dict[str, KeyEncryptionKey], manifest: RingManifest
    ) -> dict[str, KeyEncryptionKey]:
        keks = dict(have)
        live = {m.key_id for m in manifest.members if m.destroyed_at is None}
        for member in manifest.members:
            if member.key_id in live and member.key_id not in keks:
                keks[member.key_id] = _load_member(self._keystore, member)
        for key_id in set(keks) - live:
            del keks[key_id]  # destroyed meanwhile: nothing refers to it any more
        return keks

    @staticmethod
    def _active_id_at(manifest: RingManifest, at: datetime) -> str:
        active = manifest.active_at(at)
        if active is None:
            raise KekRotationError(f"no KEK of the ring is active at {at.isoformat()}")
        return active

    def refresh(self, *, force: bool = False) -> None:
        """Re-read the manifest if it changed (or ``force``) and re-decide the active KEK."""
        with self._refresh_lock:
            now = self._clock()
            due = force or time.monotonic() - self._checked >= RING_REFRESH.total_seconds()
            switch_due = self._next_switch is not None and now >= self._next_switch
            if not due and not switch_due:
                return
            self._checked = time.monotonic()
            signature = self._stat()
            if signature != self._signature:
                try:
                    manifest = read_ring(self._keystore.directory)
                    keks = self._load_new(self._keks, manifest)
                except (ConfigurationError, at_rest.AtRestError, TokenError):
                    if force:
                        raise
                    # The KEKs already loaded still open and wrap everything they did: keep
                    # working with them, say so, and try again at the next refresh.
                    _log.exception("KEK ring in %s cannot be reloaded", self._keystore.directory)
                    return
                self._keks, self.manifest, self._signature = keks, manifest, signature
            self._active_id = self._active_id_at(self.manifest, now)
            self._next_switch = self.manifest.next_switch_after(now)

    @property
    def active(self) -> KeyEncryptionKey:
        self.refresh()
        return self._keks[self._active_id]

    def get(self, key_id: str) -> KeyEncryptionKey:
        if key_id not in self._keks:
            self.refresh(force=True)
        return super().get(key_id)

    def close(self) -> None:
        """Forget the loaded keys (the token session belongs to the key store)."""
        self._keks = {}


def load_kek_ring(
    keystore: KeyStore, *, clock: Callable[[], datetime] | None = None
) -> LiveKekRing:
    """The node's KEK ring from its keys folder: every KEK listed (file or token) loaded, the
    one active now chosen. ``clock`` (default: the system clock) decides scheduled switches."""
    from datetime import UTC

    return LiveKekRing(keystore, clock or (lambda: datetime.now(UTC)))


# --- rotation steps ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RotatedKek:
    key_id: str
    location: str
    """File path or ``pkcs11:<token>/<label>``."""
    active_from: datetime
    previous: str | None
    """The KEK active before the switch."""


def rotate_kek(
    keystore: KeyStore,
    *,
    now: datetime,
    at: datetime | None = None,
    on_token: bool = False,
    scrypt_log2_n: int = kek.SCRYPT_LOG2_N,
) -> RotatedKek:
    """Make a new KEK (a file in the keys folder, or on the token) and schedule it active from
    ``at`` (default ``now``). Nothing is re-wrapped yet: run ``gateway.store.keys.rewrap_all``
    afterwards."""
    now = certificates.utc(now)
    at = now if at is None else certificates.utc(at)
    if at < now - ACTIVATION_SKEW:
        raise KekRotationError("a KEK cannot become active in the past; use --at now or later")
    directory = keystore.directory
    with locked(directory, RING_MANIFEST):
        current = read_ring(directory)
        if not ring_manifest_path(directory).exists():
            # First rotation: record the original KEK before a second file appears, so that a
            # crash in between leaves a readable ring (an unlisted file is ignored).
            write_json_atomically(ring_manifest_path(directory), current.to_json())
        live = [m for m in current.members if m.destroyed_at is None]
        if len(live) >= MAX_RING_SIZE:
            raise KekRotationError(
                f"the ring holds {len(live)} KEKs; destroy the retired ones first "
                "(`gateway keys destroy-kek KEY_ID`)"
            )
        key_id = f"kek-{secrets.token_hex(8)}"
        if on_token:
            generate_token_kek(_token(keystore), key_id)
            member = RingMember(key_id, token_label=key_id, created_at=now)
            location = f"pkcs11:{keystore.keys.pkcs11_token_label}/{key_id}"
        else:
            path = directory / f"{key_id}.key"
            kek.generate_file_kek(
                path, keystore.passphrase(), key_id=key_id, scrypt_log2_n=scrypt_log2_n
            )
            member = RingMember(key_id, file=path.name, created_at=now)
            location = str(path)
        previous = current.active_at(now)
        # A new plan replaces activations still planned, never the past.
        kept = tuple(a for a in current.activations if a.at is None or a.at <= now)
        updated = RingManifest((*current.members, member), (*kept, RingActivation(key_id, at)))
        write_json_atomically(ring_manifest_path(directory), updated.to_json())
    return RotatedKek(key_id, location, at, previous)


def destroy_kek(
    keystore: KeyStore,
    key_id: str,
    *,
    now: datetime,
    usage: Mapping[str, int],
    usage_detail: str = "",
) -> RingMember:
    """Destroy a retired KEK: refused while it is active or scheduled, while any stored key is
    wrapped under it (``usage``: keys per KEK as ``gateway.store.keys.kek_usage`` counted them
    just before; ``usage_detail`` says what they are), or within :data:`DESTROY_GRACE` of
    leaving service. The count is passed in,
    not read here: the store builds on this package, not the other way round.

    A file KEK is overwritten, flushed and unlinked (on copy-on-write or journaling storage an
    old copy of the blocks may survive: keep the keys folder on encrypted storage); a token
    KEK is destroyed on the token.
    """
    now = certificates.utc(now)
    directory = keystore.directory
    ring = read_ring(directory)
    member = ring.member(key_id)
    if member.destroyed_at is not None:
        raise KekRotationError(f"KEK {key_id} was destroyed at {member.destroyed_at.isoformat()}")
    if ring.active_at(now) == key_id:
        raise KekRotationError(
            f"KEK {key_id} is the active one; rotate first (`gateway keys rotate kek`)"
        )
    if any(a.key_id == key_id and a.at is not None and a.at > now for a in ring.activations):
        raise KekRotationError(f"KEK {key_id} is scheduled to become active; it stays")
    left = ring.left_service_at(key_id, now)
    if left is not None and now - left < DESTROY_GRACE:
        # The time still to wait, to the second up (not the whole grace whatever is left).
        remaining = timedelta(seconds=math.ceil((left + DESTROY_GRACE - now).total_seconds()))
        raise KekRotationError(
            f"KEK {key_id} left service at {left.isoformat()}; a process may still be wrapping "
            f"under it. Wait {remaining} more (until {(left + DESTROY_GRACE).isoformat()}), "
            "run `gateway keys rewrap`, then try again"
        )
    if usage.get(key_id, 0):
        detail = f" ({usage_detail})" if usage_detail else ""
        raise KekRotationError(
            f"KEK {key_id} still wraps {usage[key_id]} stored key(s){detail}; run "
            "`gateway keys rewrap --config NODE.toml` until none remain"
        )

    if member.file is not None:
        _shred(directory / member.file)
    else:
        _destroy_on_token(keystore, member)

    def change(current: RingManifest) -> RingManifest:
        members = tuple(
            replace(m, destroyed_at=now) if m.key_id == key_id else m for m in current.members
        )
        return replace(current, members=members)

    _update_ring(directory, change)
    return replace(member, destroyed_at=now)


def _shred(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def _destroy_on_token(keystore: KeyStore, member: RingMember) -> None:
    import pkcs11

    token = _token(keystore)
    with token.lock:
        for obj in list(token.session.get_objects({pkcs11.Attribute.LABEL: member.token_label})):
            obj.destroy()


# --- listing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingEntry:
    key_id: str
    location: str
    status: str
    """``active``, ``pending``, ``retired`` (still loaded, no longer wrapping) or
    ``destroyed``."""
    active_from: datetime | None
    stored_keys: int | None
    """Keys wrapped under it (None: the store was not consulted)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "role": "kek",
            "name": "",
            "algorithm": "AES-256 (symmetric)",
            "key_id": self.key_id,
            "location": self.location,
            "status": self.status,
            "active_from": schedule.time_text(self.active_from),
            "stored_keys": self.stored_keys,
        }


def ring_entries(
    keystore: KeyStore, now: datetime, usage: dict[str, int] | None = None
) -> list[RingEntry]:
    """The ring for ``gateway keys list``: each KEK, its status at ``now``, what it wraps."""
    ring = read_ring(keystore.directory)
    active = ring.active_at(now)
    result = []
    for m in ring.members:
        starts = [a.at for a in ring.activations if a.key_id == m.key_id]
        if m.destroyed_at is not None:
            status = "destroyed"
        elif m.key_id == active:
            status = "active"
        elif any(a is not None and a > now for a in starts):
            status = "pending"
        else:
            status = "retired"
        location = (
            str(keystore.directory / m.file)
            if m.file
            else f"pkcs11:{keystore.keys.pkcs11_token_label}/{m.token_label}"
        )
        result.append(
            RingEntry(
                m.key_id,
                location,
                status,
                max((a for a in starts if a is not None), default=None),
                None if usage is None else usage.get(m.key_id, 0),
            )
        )
    return result
