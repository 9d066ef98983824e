"""The node's key store: private keys in encrypted PKCS#8 files or on a PKCS#11 token.

Layout of ``[keys] dir`` (one file name stem per key: the role, or ``official-<name>``)::

    seal.key.pem              encrypted PKCS#8 (absent when the key is on the token)
    seal.crt.pem              the certificate, then its issuers (the chain), PEM
    seal.csr.pem              a request for a national CA (``gateway keys csr``)
    official-ivanov.key.pem   one per authorised person, named
    official-ivanov.crt.pem
    tls.key.pem / tls.crt.pem
    encryption.key.pem / encryption.crt.pem
    kek.key                   symmetric key-encryption key (gateway.crypto.at_rest)
    demo-ca/                  the demo CA, when ``gateway keys init-ca`` made one

On a token the key's label is its stem (``seal``, ``official-ivanov``); the certificate stays in
the folder. The passphrase comes from ``[keys] passphrase_file`` or the variable named by
``passphrase_env``, the PIN from the variable named by ``pkcs11_pin_env`` — never from the
configuration file itself.

Each key is loaded once and kept (loading an RSA key costs ~40 ms of checks, FACTS.md).

Exception tree (all are :class:`~gateway.model.problems.ConfigurationError`: an operator fixes
them, not a peer)::

    KeyStoreError
    ├── KeyNotFound          no key or no certificate for the role
    ├── PassphraseMissing    the variable or file holding the passphrase / PIN is missing
    ├── BadPassphrase        the key file does not decrypt
    └── WrongRole            the key or certificate cannot serve the role asked for
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.crypto import algorithms, certificates
from gateway.crypto.pkcs11 import TokenError, TokenSession
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


def key_stem(role: KeyRole | str, name: str = "") -> str:
    """File stem and token label of a key: ``seal``, ``official-ivanov``."""
    role = KeyRole(role)
    if role is KeyRole.OFFICIAL:
        if not OFFICIAL_NAME_PATTERN.match(name):
            raise KeyStoreError(
                f"official key name {name!r}: use lower-case Latin letters, digits, '-' or '_' "
                "(e.g. --name ivanov), and set [keys] official to it"
            )
        return f"official-{name}"
    if name:
        raise KeyStoreError(f"role {role} takes no name (only official keys are named)")
    return str(role)


def parse_stem(stem: str) -> tuple[KeyRole, str] | None:
    """(role, name) of a file stem, or None for files that are not keys."""
    if stem.startswith("official-"):
        return KeyRole.OFFICIAL, stem.removeprefix("official-")
    try:
        return KeyRole(stem), ""
    except ValueError:
        return None


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
    token (:mod:`gateway.crypto.pkcs11`)."""
    location: str
    """``/path/seal.key.pem`` or ``pkcs11:<token>/<label>``: where the key lives."""

    @property
    def body_id(self) -> str:
        return certificates.body_id_of(self.certificate)

    @property
    def algorithm(self) -> str:
        """``EC P-256``, ``RSA-3072``…"""
        return algorithms.describe_key(self.certificate.public_key())

    @property
    def on_token(self) -> bool:
        return self.location.startswith("pkcs11:")

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` with the key's default scheme (ECDSA, DER-encoded, with the curve's
        hash; RSA PKCS#1 v1.5 with SHA-256) — for receipts and other non-XML uses."""
        method, _ = algorithms.signature_method_for(self.certificate.public_key())
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            hash_alg = hashes.SHA384() if "384" in method.name else hashes.SHA256()
            return self.private_key.sign(data, ec.ECDSA(hash_alg))
        return self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

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
            self.private_key, cert, SimpleCertificateStore.from_certs(chain)
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
                return private_key.sign(data, pad, hash_algo)
            return private_key.sign(
                data, padding.PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm)
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

    def days_to_expiry(self, now: datetime) -> int | None:
        return None if self.not_after is None else (self.not_after - now).days

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "role": self.role,
            "name": self.name,
            "location": self.location,
            "algorithm": self.algorithm,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_to_expiry": self.days_to_expiry(now),
            "sha256": self.sha256,
        }


def read_secret(
    *, file: Path | None, env: str, environ: Mapping[str, str], what: str, config_key: str
) -> bytes:
    """A secret from a file (first line) or else an environment variable; never empty."""
    if file is not None:
        try:
            first = file.read_bytes().splitlines()
        except FileNotFoundError:
            raise PassphraseMissing(
                f"{what}: [keys] {config_key}_file {file} does not exist; create it (mode 0600) "
                "with the passphrase on its first line"
            ) from None
        if not first or not first[0]:
            raise PassphraseMissing(
                f"{what}: {file} is empty; put the passphrase on its first line"
            )
        return first[0]
    value = environ.get(env, "")
    if not value:
        raise PassphraseMissing(
            f"{what}: environment variable {env} is not set; export it, or set "
            f"[keys] {config_key}_file to a file holding it"
        )
    return value.encode("utf-8")


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
                pin = self._environ.get(self.keys.pkcs11_pin_env, "")
                if not pin:
                    raise PassphraseMissing(
                        f"PKCS#11 PIN: environment variable {self.keys.pkcs11_pin_env} is not set; "
                        "export it with the token's user PIN"
                    )
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

    # --- paths ---------------------------------------------------------------------------------

    def key_path(self, role: KeyRole | str, name: str = "") -> Path:
        return self.directory / f"{key_stem(role, name)}{KEY_SUFFIX}"

    def cert_path(self, role: KeyRole | str, name: str = "") -> Path:
        return self.directory / f"{key_stem(role, name)}{CERT_SUFFIX}"

    def csr_path(self, role: KeyRole | str, name: str = "") -> Path:
        return self.directory / f"{key_stem(role, name)}{CSR_SUFFIX}"

    @property
    def kek_path(self) -> Path:
        return self.directory / KEK_FILE

    @property
    def demo_ca_dir(self) -> Path:
        return self.directory / DEMO_CA_DIR

    def location(self, role: KeyRole | str, name: str = "") -> str:
        """Where the key lives (file wins over token), or ``missing``."""
        path = self.key_path(role, name)
        if path.exists():
            return str(path)
        if self.uses_token:
            return f"pkcs11:{self.keys.pkcs11_token_label}/{key_stem(role, name)}"
        return "missing"

    # --- loading -------------------------------------------------------------------------------

    def seal(self) -> SigningKey:
        return self.signing_key(KeyRole.SEAL)

    def official(self, name: str | None = None) -> SigningKey:
        """The official key named ``name``, or the one ``[keys] official`` names."""
        name = name if name is not None else self.keys.official
        if not name:
            raise KeyNotFound(
                'no official key chosen: set [keys] official = "<name>" in the configuration '
                "(the <name> of keys/official-<name>.key.pem)"
            )
        return self.signing_key(KeyRole.OFFICIAL, name)

    def tls(self) -> SigningKey:
        return self.load(KeyRole.TLS)

    def encryption(self) -> SigningKey:
        return self.load(KeyRole.ENCRYPTION)

    def signing_key(self, role: KeyRole | str, name: str = "") -> SigningKey:
        """A key that signs documents (seal or official); other roles raise :class:`WrongRole`."""
        role = KeyRole(role)
        if role not in SIGNING_ROLES:
            raise WrongRole(
                f"the {role} key cannot sign documents; documents are signed with the seal "
                "and an official's key"
            )
        return self.load(role, name)

    def load(self, role: KeyRole | str, name: str = "") -> SigningKey:
        """Load (once) the private key and certificate of ``role``/``name``."""
        role = KeyRole(role)
        if role is KeyRole.KEK:
            raise WrongRole(
                "the kek is a symmetric key: use gateway.crypto.at_rest.load_file_kek, "
                f"not the key store's load ({self.kek_path})"
            )
        stem = key_stem(role, name)
        with self._lock:
            cached = self._cache.get(stem)
            if cached is not None:
                return cached
            certificate, chain = self._read_certificate(role, name)
            key_file = self.key_path(role, name)
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
            if not certificates.same_public_key(private_key.public_key(), certificate.public_key()):
                raise WrongRole(
                    f"{role} key {stem!r}: the certificate {self.cert_path(role, name)} was issued "
                    f"for another key ({location}); import the certificate issued for this key"
                )
            mismatch = certificates.role_mismatch(certificate, str(role))
            if mismatch:
                raise WrongRole(
                    f"{role} key {stem!r}: certificate {self.cert_path(role, name)} cannot serve "
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
            )
            self._cache[stem] = key
            return key

    def _read_certificate(
        self, role: KeyRole, name: str
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        path = self.cert_path(role, name)
        try:
            certs = certificates.load_pem_certificates(path.read_bytes())
        except FileNotFoundError:
            raise KeyNotFound(
                f"{role} key {key_stem(role, name)!r}: no certificate {path}; run `gateway keys "
                "generate` (demo CA) or `gateway keys csr` then `gateway keys import`"
            ) from None
        if not certs:
            raise KeyNotFound(f"{path}: holds no PEM certificate")
        return certs[0], certs[1:]

    def read_private_key_file(self, path: Path, stem: str) -> Any:
        passphrase = self.passphrase()
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), passphrase)
        except (ValueError, TypeError) as exc:
            if "password" in str(exc).lower() or "decrypt" in str(exc).lower():
                source = (
                    f"the file {self.keys.passphrase_file}"
                    if self.keys.passphrase_file
                    else f"the variable {self.keys.passphrase_env}"
                )
                raise BadPassphrase(
                    f"{stem} key {path}: the passphrase from {source} does not decrypt it; "
                    "set the passphrase the key was written with"
                ) from None
            raise KeyStoreError(
                f"{stem} key {path}: not a PEM PKCS#8 private key ({exc})"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyStoreError(f"{stem} key {path}: only EC and RSA keys are supported")
        try:
            algorithms.check_public_key(key.public_key())
        except algorithms.WeakAlgorithm as exc:
            raise KeyStoreError(f"{stem} key {path}: {exc}") from None
        return key

    # --- listing -------------------------------------------------------------------------------

    def entries(self) -> list[KeyEntry]:
        """Every key of the folder (and the demo CA and kek), for ``gateway keys list``."""
        found: dict[str, KeyEntry] = {}
        if self.directory.is_dir():
            # A key on a token has no key file: its certificate or request names it.
            suffixes = (KEY_SUFFIX, CERT_SUFFIX, CSR_SUFFIX)
            stems = set()
            for p in self.directory.iterdir():
                for suffix in suffixes:
                    if p.name.endswith(suffix):
                        stems.add(p.name.removesuffix(suffix))
            for stem in sorted(stems):
                parsed = parse_stem(stem)
                if parsed is None:
                    continue
                role, name = parsed
                found[stem] = self._entry(role, name)
        if self.kek_path.exists():
            found["kek"] = KeyEntry(
                role="kek", name="", location=str(self.kek_path), algorithm="AES-256 (symmetric)"
            )
        ca_cert = self.demo_ca_dir / certificates.DemoCA.CERT_FILE
        if ca_cert.exists():
            cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
            found["demo-ca"] = _entry_for("demo-ca", "", str(self.demo_ca_dir), cert)
        return list(found.values())

    def _entry(self, role: KeyRole, name: str) -> KeyEntry:
        location = self.location(role, name)
        cert_path = self.cert_path(role, name)
        if cert_path.exists():
            certs = certificates.load_pem_certificates(cert_path.read_bytes())
            if certs:
                return _entry_for(str(role), name, location, certs[0])
        waiting = (
            " (request written, awaiting import)" if self.csr_path(role, name).exists() else ""
        )
        return KeyEntry(
            role=str(role), name=name, location=location, subject=f"(no certificate){waiting}"
        )


def _entry_for(role: str, name: str, location: str, cert: x509.Certificate) -> KeyEntry:
    return KeyEntry(
        role=role,
        name=name,
        location=location,
        algorithm=algorithms.describe_key(cert.public_key()),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
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
