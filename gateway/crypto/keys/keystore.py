"""The node's key store: private keys in encrypted PKCS#8 files or on a PKCS#11 token.

Layout of ``[keys] dir`` (one file name stem per key: the role, or ``official-<name>``)::

    seal.key.pem              encrypted PKCS#8 (absent when the key is on the token)
    seal.crt.pem              the certificate, then its issuers (the chain), PEM
    seal.csr.pem              a request for a national CA (``gateway keys csr``)
    official-ivanov.key.pem   one per authorised person, named
    official-ivanov.crt.pem
    tls.key.pem / tls.crt.pem
    encryption.key.pem / encryption.crt.pem
    kek.key                   symmetric key-encryption key (gateway.crypto.keys.kek)
    demo-ca/                  the demo CA, when ``gateway keys init-ca`` made one

Rotation (:mod:`gateway.crypto.keys.generations`) adds generations beside a key: ``seal.2.key.pem``,
``seal.2.crt.pem`` (token label ``seal.2``) and the manifest ``seal.generations.json`` saying
which generation is active when and which are revoked. Every call that hands out a key takes
``at`` (default: now) and returns the generation active at that time, refusing a revoked one;
callers ask per use (``keys.seal(at=now)``) instead of keeping the key object, so that a
scheduled switch or a revocation takes effect in every process without restart.

On a token the key's label is its stem (``seal``, ``official-ivanov``); the certificate stays in
the folder. The passphrase comes from ``[keys] passphrase_file``, the systemd credential
``key-passphrase`` or the variable named by ``passphrase_env``; the PIN from
``pkcs11_pin_file``, the credential ``pkcs11-pin`` or the variable named by ``pkcs11_pin_env``
(:mod:`gateway.credentials`) — never from the configuration file itself.

Each key is loaded once and kept (loading an RSA key costs ~40 ms of checks, FACTS.md).

Exception tree (all are :class:`~gateway.model.problems.ConfigurationError`: an operator fixes
them, not a peer)::

    KeyStoreError
    ├── KeyNotFound          no key or no certificate for the role
    ├── PassphraseMissing    the variable or file holding the passphrase / PIN is missing
    ├── BadPassphrase        the key file does not decrypt
    ├── WrongRole            the key or certificate cannot serve the role asked for
    └── KeyRevoked           the generation in force was revoked: rotate to a new one
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from gateway import credentials
from gateway.crypto import algorithms, certificates, gost
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.generations import (
    MANIFEST_SUFFIX,
    GenerationInfo,
    KeyGenerations,
    Signer,
    expiring_keys,
    generation_stem,
    manifest_path,
    read_generations,
    split_generation_stem,
)
from gateway.crypto.keys.pkcs11 import TokenError, TokenSession
from gateway.model.directory import Suite
from gateway.model.problems import ConfigurationError

if TYPE_CHECKING:
    from gateway.config import KeysSection, NodeConfig

KEY_SUFFIX = ".key.pem"
CERT_SUFFIX = ".crt.pem"
CSR_SUFFIX = ".csr.pem"
KEK_FILE = "kek.key"
DEMO_CA_DIR = "demo-ca"

OFFICIAL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
"""An official's key name: lower-case Latin letters, digits, ``-``, ``_`` (it becomes a file
name and a token label, so nothing that a shell or a path could misread)."""


class KeyRole(StrEnum):
    SEAL = "seal"
    """The body's electronic seal: signs every outgoing document (CIS Art. 11.3)."""
    OFFICIAL = "official"
    """An authorised person's signature; one key per person, named."""
    TLS = "tls"
    """Mutual TLS between nodes."""
    ENCRYPTION = "encryption"
    """Asymmetric key peers encrypt confidential documents to."""
    KEK = "kek"
    """Symmetric key-encryption key for data at rest."""


SIGNING_ROLES = frozenset({KeyRole.SEAL, KeyRole.OFFICIAL})


class KeyStoreError(ConfigurationError):
    """A key could not be provided; the message names the key and what to do."""


class KeyNotFound(KeyStoreError):
    pass


class PassphraseMissing(KeyStoreError):
    pass


class BadPassphrase(KeyStoreError):
    pass


class WrongRole(KeyStoreError):
    pass


class KeyRevoked(KeyStoreError):
    """The generation in force at the time asked for was revoked: nothing signs with it."""


def key_stem(role: KeyRole | str, name: str = "") -> str:
    """File stem and token label of a key: ``seal``, ``official-ivanov``."""
    role = KeyRole(role)
    if role is KeyRole.OFFICIAL:
        if not OFFICIAL_NAME_PATTERN.fullmatch(name):
            raise KeyStoreError(
                f"official key name {name!r}: use lower-case Latin letters, digits, '-' or '_' "
                "(e.g. --name ivanov), and set [keys] official to it"
            )
        return f"official-{name}"
    if name:
        raise KeyStoreError(f"role {role} takes no name (only official keys are named)")
    return str(role)


def parse_stem(stem: str) -> tuple[KeyRole, str] | None:
    """(role, name) of a file stem, or None for files that are not keys (a generation's stem
    ``seal.2`` is not a key stem: see :func:`parse_generation_stem`)."""
    if stem.startswith("official-"):
        return KeyRole.OFFICIAL, stem.removeprefix("official-")
    try:
        return KeyRole(stem), ""
    except ValueError:
        return None


def parse_generation_stem(stem: str) -> tuple[KeyRole, str, int] | None:
    """(role, name, generation) of ``seal``, ``seal.2``, ``official-ivanov.3``; None if no key."""
    base, generation = split_generation_stem(stem)
    parsed = parse_stem(base)
    if parsed is None or (
        parsed[0] is KeyRole.OFFICIAL and not OFFICIAL_NAME_PATTERN.fullmatch(parsed[1])
    ):
        return None
    return parsed[0], parsed[1], generation


@dataclass(frozen=True, eq=False)
class SigningKey:
    """A loaded private key with its certificate: what signs documents (and PDFs)."""

    role: KeyRole
    name: str
    """Official's key name; empty for other roles."""
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    """Issuer certificates, signer's issuer first (included in signatures)."""
    private_key: Any
    """A ``cryptography`` private key — for a token key, a proxy whose ``sign()`` calls the
    token (:mod:`gateway.crypto.keys.pkcs11`)."""
    location: str
    """``/path/seal.key.pem`` or ``pkcs11:<token>/<label>``: where the key lives."""
    generation: int = 1
    """Which generation of the key this is (:mod:`gateway.crypto.keys.generations`)."""

    @property
    def body_id(self) -> str:
        return certificates.body_id_of(self.certificate)

    @property
    def algorithm(self) -> str:
        """``EC P-256``, ``RSA-3072``…"""
        return algorithms.describe_key(certificates.public_key_of(self.certificate))

    @property
    def on_token(self) -> bool:
        return self.location.startswith("pkcs11:")

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with the key's default scheme (ECDSA, DER-encoded, with the curve's
        hash; RSA PKCS#1 v1.5 with SHA-256; GOST ``s || r`` with Streebog) — for receipts and
        other non-XML uses."""
        method, _ = algorithms.signature_method_for(certificates.public_key_of(self.certificate))
        if gost.is_gost_certificate(self.certificate):  # in memory or on a token
            return bytes(self.private_key.sign(data))
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            hash_alg = hashes.SHA384() if "384" in method.name else hashes.SHA256()
            return bytes(self.private_key.sign(data, ec.ECDSA(hash_alg)))
        return bytes(self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256()))

    @property
    def pades_capable(self) -> bool:
        """Whether PAdES (pyHanko) can sign with this key: not with GOST, which pyHanko's CMS
        does not know (renditions of GOST bodies are not signed; docs/keys-and-signatures.md)."""
        return not gost.is_gost_certificate(self.certificate)

    def pdf_signer(self) -> Any:
        """A pyHanko signer for PAdES: pyHanko's ``PKCS11Signer`` on a token, otherwise a
        ``SimpleSigner`` that reuses the loaded key (pyHanko's own reloads it per signature).

        A token signer has its own PKCS#11 session (``signer.pkcs11_session``): close it when
        done with the signer.
        """
        from asn1crypto import x509 as asn1_x509
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        def to_asn1(c: x509.Certificate) -> asn1_x509.Certificate:
            return asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))

        if not self.pades_capable:
            raise KeyStoreError(
                f"{self.role} key {self.location}: PAdES signatures with GOST R 34.10-2012 are "
                "not supported (pyHanko has no GOST); the XML document itself is signed with GOST"
            )
        cert = to_asn1(self.certificate)
        chain = [to_asn1(c) for c in self.chain]
        if self.on_token:
            from pyhanko.sign.pkcs11 import PKCS11Signer

            token: TokenSession = self.private_key.token
            return PKCS11Signer(
                token.extra_session(),
                key_label=self.private_key.label,
                signing_cert=cert,
                ca_chain=chain,
                # Hash in software, sign the digest on the token (CKM_ECDSA / CKM_RSA_PKCS):
                # every token has these; SoftHSM and many HSMs lack CKM_ECDSA_SHA256.
                use_raw_mechanism=True,
            )
        return _loaded_simple_signer(
            self.private_key,
            cert,
            SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
        )


def _loaded_simple_signer(private_key: Any, cert: Any, registry: Any) -> Any:
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.util import get_pyca_cryptography_hash, process_pss_params

    class LoadedKeySigner(SimpleSigner):
        """SimpleSigner over an already loaded key (FACTS.md: pyHanko reloads per signature)."""

        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)
            name = mechanism["algorithm"].native
            if isinstance(private_key, ec.EllipticCurvePrivateKey):
                return private_key.sign(
                    data, ec.ECDSA(get_pyca_cryptography_hash(digest_algorithm))
                )
            if name == "rsassa_pss":
                pad, hash_algo = process_pss_params(mechanism["parameters"])
                return bytes(private_key.sign(data, pad, hash_algo))
            return bytes(
                private_key.sign(
                    data, padding.PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm)
                )
            )

    # SimpleSigner reads its signing_key only in the sign_raw replaced above: the secret is
    # never serialised again.
    return LoadedKeySigner(signing_cert=cert, signing_key=None, cert_registry=registry)


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One line of ``gateway keys list``."""

    role: str
    name: str
    location: str
    """Key file, ``pkcs11:<token>/<label>``, or ``missing``."""
    algorithm: str = ""
    subject: str = ""
    issuer: str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    sha256: str = ""
    serial: str = ""
    """Hexadecimal serial number: what a CA needs to revoke the certificate."""
    generation: int = 1
    status: str = ""
    """``active``, ``pending``, ``superseded``, ``revoked`` (keys with a certificate); for a KEK
    ``active`` or ``retired``."""
    expiring: bool = False
    """In use (active or pending) and its certificate ends within the warning period."""
    activation_at: datetime | None = None
    """When the schedule makes (or made) this generation active; None: from the beginning, or
    never scheduled."""
    revoked_at: datetime | None = None
    revocation_reason: str = ""
    stem: str = ""
    """The generation's file stem and token label (``seal.2``), what revoking it remotely asks
    to be typed; empty for a KEK and the demo CA."""

    def days_to_expiry(self, now: datetime) -> int | None:
        return None if self.not_after is None else (self.not_after - now).days

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "generation": self.generation,
            "status": self.status,
            "expiring": self.expiring,
            "location": self.location,
            "algorithm": self.algorithm,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_to_expiry": self.days_to_expiry(now),
            "sha256": self.sha256,
            "serial": self.serial,
            "activation_at": self.activation_at.isoformat() if self.activation_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revocation_reason": self.revocation_reason or None,
        }


def read_secret(
    *,
    file: Path | None,
    env: str,
    environ: Mapping[str, str],
    what: str,
    config_key: str,
) -> bytes:
    """A secret from its file (first line), systemd credential or environment variable
    (:func:`gateway.credentials.find_secret`); never empty."""
    try:
        found = credentials.find_secret(key=config_key, file=file, env=env, environ=environ)
    except credentials.SecretMissing as exc:
        raise PassphraseMissing(f"{what}: {exc}") from None
    if found is None:
        raise PassphraseMissing(
            f"{what}: not found; {credentials.sources(config_key, env, 'keys')}"
        )
    return found[0]


class KeyStore:
    """Keys of one node. Not a singleton: the app keeps one under an ``AppKey``."""

    def __init__(
        self,
        keys: KeysSection,
        body_id: str,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.keys = keys
        self.body_id = body_id
        self.directory = Path(keys.dir)
        self._environ = os.environ if environ is None else environ
        self._cache: dict[str, SigningKey] = {}
        self._manifests: dict[str, tuple[tuple[int, ...] | None, KeyGenerations]] = {}
        self._lock = threading.RLock()
        self._token: TokenSession | None = None

    @classmethod
    def from_config(cls, config: NodeConfig, environ: Mapping[str, str] | None = None) -> KeyStore:
        return cls(config.keys, config.node.body_id, environ=environ)

    # --- secrets ------------------------------------------------------------------------------

    def passphrase(self) -> bytes:
        """The passphrase of the PKCS#8 files (from the file or the variable)."""
        return read_secret(
            file=self.keys.passphrase_file,
            env=self.keys.passphrase_env,
            environ=self._environ,
            what="key passphrase",
            config_key="passphrase",
        )

    @property
    def uses_token(self) -> bool:
        return self.keys.pkcs11_module is not None

    def token(self) -> TokenSession:
        """The logged-in token session (opened once)."""
        with self._lock:
            if self._token is None:
                if self.keys.pkcs11_module is None:
                    raise KeyStoreError("no PKCS#11 token configured: set [keys] pkcs11_module")
                pin = read_secret(
                    file=self.keys.pkcs11_pin_file,
                    env=self.keys.pkcs11_pin_env,
                    environ=self._environ,
                    what="PKCS#11 PIN",
                    config_key="pkcs11_pin",
                ).decode("utf-8")
                try:
                    self._token = TokenSession.open(
                        Path(self.keys.pkcs11_module), self.keys.pkcs11_token_label, pin
                    )
                except TokenError as exc:
                    raise KeyStoreError(str(exc)) from None
            return self._token

    def close(self) -> None:
        with self._lock:
            if self._token is not None:
                self._token.close()
                self._token = None
            self._cache.clear()
            self._manifests.clear()

    # --- paths ---------------------------------------------------------------------------------

    def key_path(self, role: KeyRole | str, name: str = "", generation: int = 1) -> Path:
        return self.directory / f"{self.stem(role, name, generation)}{KEY_SUFFIX}"

    def cert_path(self, role: KeyRole | str, name: str = "", generation: int = 1) -> Path:
        return self.directory / f"{self.stem(role, name, generation)}{CERT_SUFFIX}"

    def csr_path(self, role: KeyRole | str, name: str = "", generation: int = 1) -> Path:
        return self.directory / f"{self.stem(role, name, generation)}{CSR_SUFFIX}"

    @staticmethod
    def stem(role: KeyRole | str, name: str = "", generation: int = 1) -> str:
        """File stem and token label of a generation (``seal``, ``seal.2``)."""
        return generation_stem(key_stem(role, name), generation)

    def manifest_path(self, role: KeyRole | str, name: str = "") -> Path:
        return manifest_path(self.directory, key_stem(role, name))

    # --- generations ---------------------------------------------------------------------------

    def generations(self, role: KeyRole | str, name: str = "") -> KeyGenerations:
        """The key's manifest, re-read whenever the file changed (one ``stat`` per call): a
        switch or a revocation written by the CLI reaches running processes at once."""
        base = key_stem(role, name)
        path = manifest_path(self.directory, base)
        try:
            st = path.stat()
            signature: tuple[int, ...] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            signature = None
        with self._lock:
            cached = self._manifests.get(base)
            if cached is not None and cached[0] == signature:
                return cached[1]
            manifest = read_generations(self.directory, base)
            self._manifests[base] = (signature, manifest)
            return manifest

    def signers(self, role: KeyRole | str, name: str = "") -> tuple[Signer, ...]:
        """Every generation the key's manifest knows, oldest first, with its certificate and
        the window it could sign in: what this body's proofs of earlier days are judged by (a
        purge report, an audit checkpoint stay verifiable after a rotation; one claiming a time
        after its generation's revocation does not). A generation whose certificate file is
        gone is skipped."""
        manifest = self.generations(role, name)
        found = {}
        for generation in manifest.generations:
            path = self.cert_path(role, name, generation.number)
            if path.exists():
                found[generation.number] = x509.load_pem_x509_certificate(path.read_bytes())
        return manifest.signers(found)

    def active_generation(
        self, role: KeyRole | str, name: str = "", at: datetime | None = None
    ) -> int:
        """The generation of ``role``/``name`` in force at ``at`` (default: now)."""
        at = _now() if at is None else certificates.utc(at)
        number = self.generations(role, name).active_at(at)
        if number is None:
            raise KeyNotFound(
                f"{key_stem(role, name)}: no generation is active at {at.isoformat()}; "
                f"run `gateway keys activate {role}{':' + name if name else ''} --generation N "
                "--at now --config NODE.toml`"
            )
        return number

    @property
    def kek_path(self) -> Path:
        return self.directory / KEK_FILE

    @property
    def demo_ca_dir(self) -> Path:
        return self.directory / DEMO_CA_DIR

    def location(self, role: KeyRole | str, name: str = "", generation: int = 1) -> str:
        """Where the key lives (file wins over token), or ``missing``."""
        path = self.key_path(role, name, generation)
        if path.exists():
            return str(path)
        if self.uses_token:
            return f"pkcs11:{self.keys.pkcs11_token_label}/{self.stem(role, name, generation)}"
        return "missing"

    # --- loading -------------------------------------------------------------------------------

    def seal(self, at: datetime | None = None) -> SigningKey:
        """The seal generation in force at ``at`` (default: now)."""
        return self.signing_key(KeyRole.SEAL, at=at)

    def official(self, name: str | None = None, at: datetime | None = None) -> SigningKey:
        """The official key named ``name``, or the one ``[keys] official`` names, in the
        generation in force at ``at`` (default: now)."""
        name = name if name is not None else self.keys.official
        if not name:
            raise KeyNotFound(
                'no official key chosen: set [keys] official = "<name>" in the configuration '
                "(the <name> of keys/official-<name>.key.pem)"
            )
        return self.signing_key(KeyRole.OFFICIAL, name, at=at)

    def tls(self, at: datetime | None = None) -> SigningKey:
        return self.load(KeyRole.TLS, at=at)

    def encryption(self, at: datetime | None = None) -> SigningKey:
        return self.load(KeyRole.ENCRYPTION, at=at)

    def decryption_keys(self) -> list[SigningKey]:
        """Every generation of the encryption key that the folder still holds, the one active
        now first: peers may have encrypted to the old certificate until they took the new
        directory version (for ``recipient.decrypt_with_any``). Revocation stops peers from
        encrypting to a key, not us from reading what was already encrypted to it."""
        manifest = self.generations(KeyRole.ENCRYPTION)
        active = manifest.active_at(_now())
        numbers = sorted((g.number for g in manifest.generations), key=lambda n: n != active)
        found = []
        for number in numbers:
            try:
                found.append(self._load_generation(KeyRole.ENCRYPTION, "", number))
            except KeyNotFound:
                continue
        return found

    def signing_key(
        self, role: KeyRole | str, name: str = "", at: datetime | None = None
    ) -> SigningKey:
        """A key that signs documents (seal or official); other roles raise :class:`WrongRole`."""
        role = KeyRole(role)
        if role not in SIGNING_ROLES:
            raise WrongRole(
                f"the {role} key cannot sign documents; documents are signed with the seal "
                "and an official's key"
            )
        return self.load(role, name, at=at)

    def signing_key_for(
        self,
        role: KeyRole | str,
        name: str = "",
        *,
        at: datetime,
        suites: Collection[Suite],
    ) -> SigningKey:
        """The key of ``role``/``name`` to sign at ``at`` for a recipient accepting ``suites``:
        the generation in force when its suite is one of them; else, during a rotation from
        one suite to another, the newest generation that was activated, is not revoked and
        whose certificate is valid at ``at`` and of such a suite (the overlap: the old suite
        serves peers that do not accept the new one yet). Raises :class:`KeyStoreError` naming
        the suites when there is none."""
        key = self.signing_key(role, name, at=at)
        if _suite(key) in suites:
            return key
        manifest = self.generations(role, name)
        for generation in sorted(manifest.generations, key=lambda g: -g.number):
            number = generation.number
            if manifest.revoked_at(number, at) or not manifest.ever_active_before(number, at):
                continue
            try:
                candidate = self._load_generation(KeyRole(role), name, number)
            except KeyStoreError:
                continue
            cert = candidate.certificate
            valid = cert.not_valid_before_utc <= at <= cert.not_valid_after_utc
            if valid and _suite(candidate) in suites:
                return candidate
        raise KeyStoreError(
            f"{key_stem(role, name)}: no usable generation signs with "
            f"{' or '.join(suites) or '(no suite)'}; the one in force signs with {_suite(key)}. "
            "Generate a key of an accepted suite (gateway keys rotate … --algorithm) and "
            "activate it"
        )

    def load(
        self,
        role: KeyRole | str,
        name: str = "",
        *,
        generation: int | None = None,
        at: datetime | None = None,
    ) -> SigningKey:
        """The private key and certificate of ``role``/``name`` (loaded once, kept): the
        generation in force at ``at`` (default: now), or ``generation`` if given. Refuses
        (:class:`KeyRevoked`) a generation revoked at or before ``at``."""
        role = KeyRole(role)
        if role is KeyRole.KEK:
            raise WrongRole(
                "the kek is a symmetric key: use gateway.crypto.keys.kek_ring.load_kek_ring, "
                f"not the key store's load ({self.kek_path})"
            )
        at = _now() if at is None else certificates.utc(at)
        number = generation if generation is not None else self.active_generation(role, name, at)
        g = self.generations(role, name).generation(number)
        if g.revoked_at is not None and g.revoked_at <= at:
            raise KeyRevoked(
                f"{role} key {self.stem(role, name, number)!r} was revoked at "
                f"{g.revoked_at.isoformat()} ({g.reason}); nothing signs with it. Rotate: "
                f"`gateway keys rotate {role}{' --name ' + name if name else ''} --config "
                "NODE.toml`, then `gateway keys activate … --at now`"
            )
        return self._load_generation(role, name, number)

    def _load_generation(self, role: KeyRole, name: str, number: int) -> SigningKey:
        stem = self.stem(role, name, number)
        with self._lock:
            cached = self._cache.get(stem)
            if cached is not None:
                return cached
            certificate, chain = self._read_certificate(role, name, number)
            key_file = self.key_path(role, name, number)
            if key_file.exists():
                private_key = self.read_private_key_file(key_file, stem)
                location = str(key_file)
            elif self.uses_token:
                try:
                    private_key = self.token().private_key(stem)
                except TokenError as exc:
                    raise KeyNotFound(str(exc)) from None
                location = f"pkcs11:{self.keys.pkcs11_token_label}/{stem}"
            else:
                raise KeyNotFound(
                    f"{role} key {stem!r}: {key_file} does not exist; run "
                    f"`gateway keys generate {role}{' --name ' + name if name else ''} "
                    "--config NODE.toml`"
                )
            if not certificates.same_public_key(
                private_key.public_key(), certificates.public_key_of(certificate)
            ):
                raise WrongRole(
                    f"{role} key {stem!r}: the certificate {self.cert_path(role, name, number)} "
                    "was issued "
                    f"for another key ({location}); import the certificate issued for this key"
                )
            mismatch = certificates.role_mismatch(certificate, str(role))
            if mismatch:
                raise WrongRole(
                    f"{role} key {stem!r}: certificate {self.cert_path(role, name, number)} cannot "
                    "serve "
                    f"as {role}: {mismatch}; issue a certificate with the {role} profile"
                )
            owner = certificates.body_id_of(certificate)
            if owner != self.body_id:
                raise WrongRole(
                    f"{role} key {stem!r}: certificate belongs to body {owner or '(none)'!r}, "
                    f"this node is {self.body_id!r} ([node] body_id); its organizationIdentifier "
                    "must be the node's body id"
                )
            key = SigningKey(
                role=role,
                name=name,
                certificate=certificate,
                chain=tuple(chain),
                private_key=private_key,
                location=location,
                generation=number,
            )
            self._cache[stem] = key
            return key

    def _read_certificate(
        self, role: KeyRole, name: str, generation: int = 1
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        path = self.cert_path(role, name, generation)
        try:
            certs = certificates.load_pem_certificates(path.read_bytes())
        except FileNotFoundError:
            raise KeyNotFound(
                f"{role} key {self.stem(role, name, generation)!r}: no certificate {path}; run "
                "`gateway keys generate` (demo CA) or `gateway keys csr` then `gateway keys "
                "import`"
            ) from None
        if not certs:
            raise KeyNotFound(f"{path}: holds no PEM certificate")
        return certs[0], certs[1:]

    def read_private_key_file(self, path: Path, stem: str) -> Any:
        passphrase = self.passphrase()
        try:
            key = certificates.load_pem_private_key(path.read_bytes(), passphrase)
        except certificates.UnsupportedKey:
            raise KeyStoreError(
                f"{stem} key {path}: only EC, RSA and GOST keys are supported"
            ) from None
        except (ValueError, TypeError) as exc:
            if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
                found = credentials.find_secret(
                    key="passphrase",
                    file=self.keys.passphrase_file,
                    env=self.keys.passphrase_env,
                    environ=self._environ,
                )
                source = found[1] if found else "?"
                raise BadPassphrase(
                    f"{stem} key {path}: the passphrase from {source} does not decrypt it; "
                    "set the passphrase the key was written with"
                ) from None
            raise KeyStoreError(
                f"{stem} key {path}: not a PEM PKCS#8 private key ({exc})"
            ) from None
        try:
            algorithms.check_public_key(key.public_key())
        except algorithms.WeakAlgorithm as exc:
            raise KeyStoreError(f"{stem} key {path}: {exc}") from None
        return key

    # --- listing -------------------------------------------------------------------------------

    def _stems(self) -> list[tuple[KeyRole, str, int]]:
        """(role, name, generation) of every key the folder knows: by its files (a key on a
        token has only its certificate or request here) and by the manifests."""
        found: set[tuple[KeyRole, str, int]] = set()
        if not self.directory.is_dir():
            return []
        for p in self.directory.iterdir():
            if p.name.endswith(MANIFEST_SUFFIX):
                parsed = parse_stem(p.name.removesuffix(MANIFEST_SUFFIX))
                if parsed is None:
                    continue
                manifest = self.generations(*parsed)
                found.update((parsed[0], parsed[1], g.number) for g in manifest.generations)
                continue
            for suffix in (KEY_SUFFIX, CERT_SUFFIX, CSR_SUFFIX):
                if p.name.endswith(suffix):
                    key = parse_generation_stem(p.name.removesuffix(suffix))
                    if key is not None:
                        found.add(key)
        return sorted(found, key=lambda k: (str(k[0]), k[1], k[2]))

    def generation_infos(self) -> list[GenerationInfo]:
        """Every generation of every certified role in the folder, with its certificate."""
        infos = []
        for role, name, number in self._stems():
            if role is KeyRole.KEK:
                continue
            cert_path = self.cert_path(role, name, number)
            certs = (
                certificates.load_pem_certificates(cert_path.read_bytes())
                if cert_path.exists()
                else []
            )
            infos.append(
                GenerationInfo(
                    role=str(role),
                    name=name,
                    generation=number,
                    stem=self.stem(role, name, number),
                    stem_base=key_stem(role, name),
                    manifest=self.generations(role, name),
                    certificate=certs[0] if certs else None,
                    chain=tuple(certs[1:]),
                )
            )
        return infos

    def entries(self, now: datetime | None = None) -> list[KeyEntry]:
        """Every key of the folder, each generation with its status at ``now`` (and the demo
        CA and KEK files), for ``gateway keys list``."""
        now = _now() if now is None else certificates.utc(now)
        expiring = {(e.role, e.name, e.generation) for e in expiring_keys(self, now)}
        found: list[KeyEntry] = []
        for info in self.generation_infos():
            location = self.location(info.role, info.name, info.generation)
            status = info.manifest.status(info.generation, now).value
            if info.certificate is not None:
                entry = _entry_for(info.role, info.name, location, info.certificate)
            else:
                waiting = (
                    " (request written, awaiting import)"
                    if self.csr_path(info.role, info.name, info.generation).exists()
                    else ""
                )
                entry = KeyEntry(
                    role=info.role,
                    name=info.name,
                    location=location,
                    subject=f"(no certificate){waiting}",
                )
            generation = info.manifest.generation(info.generation)
            scheduled = [
                a.at
                for a in info.manifest.activations
                if a.generation == info.generation and a.at is not None
            ]
            found.append(
                replace(
                    entry,
                    generation=info.generation,
                    status=status,
                    expiring=(info.role, info.name, info.generation) in expiring,
                    activation_at=max(scheduled) if scheduled else None,
                    revoked_at=generation.revoked_at,
                    revocation_reason=generation.reason.value if generation.reason else "",
                    stem=info.stem,
                )
            )
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("kek*.key")):
                found.append(
                    KeyEntry(
                        role="kek", name="", location=str(path), algorithm="AES-256 (symmetric)"
                    )
                )
        ca_cert = self.demo_ca_dir / DemoCA.CERT_FILE
        if ca_cert.exists():
            cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
            found.append(_entry_for("demo-ca", "", str(self.demo_ca_dir), cert))
        return found


def _suite(key: SigningKey) -> Suite:
    return algorithms.suite_for_key(certificates.public_key_of(key.certificate))


def _now() -> datetime:
    """The clock, read only where a caller gave no time (tests always give one)."""
    return datetime.now(UTC)


def _entry_for(role: str, name: str, location: str, cert: x509.Certificate) -> KeyEntry:
    return KeyEntry(
        role=role,
        name=name,
        location=location,
        algorithm=algorithms.describe_key(certificates.public_key_of(cert)),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        serial=f"{cert.serial_number:x}",
    )


def write_file_key(
    directory: Path,
    role: KeyRole | str,
    name: str,
    private_key: Any,
    certs: Sequence[x509.Certificate],
    passphrase: bytes,
) -> tuple[Path, Path]:
    """Write a key (encrypted PKCS#8, mode 0600) and its certificate chain in the store's layout."""
    stem = key_stem(role, name)
    key_path = directory / f"{stem}{KEY_SUFFIX}"
    cert_path = directory / f"{stem}{CERT_SUFFIX}"
    certificates.write_private_key(key_path, private_key, passphrase)
    if certs:
        cert_path.write_bytes(certificates.pem_bundle(certs))
    return key_path, cert_path
