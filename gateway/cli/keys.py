"""``gateway keys``: the demo CA, key generation, certificate requests, import, listing.

    gateway keys init-ca  --config NODE.toml                 demo CA (NOT FOR PRODUCTION)
    gateway keys generate ROLE --config NODE.toml [--name N --person P --title T]
    gateway keys csr      ROLE --config NODE.toml [--name N --person P --title T]
    gateway keys import   ROLE CERT.pem --config NODE.toml [--name N]
    gateway keys list     --config NODE.toml [--json]
    gateway keys crl      --config NODE.toml [--revoke ROLE[:NAME]]   demo CA's CRL

Passphrases and PINs come from the variables the configuration names, never from arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gateway.config import NodeConfig
from gateway.crypto import algorithms, certificates
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import DEMO_LABEL, CertificateProfile, DemoCA
from gateway.crypto.keystore import (
    KeyRole,
    KeyStore,
    KeyStoreError,
    key_stem,
)
from gateway.crypto.pkcs11 import TokenError
from gateway.model.problems import ConfigurationError, GatewayError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="keys, certificates and the demo CA")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
        return p

    p = add("init-ca", f"create a demo CA in KEYS/demo-ca ({DEMO_LABEL})")
    p.add_argument("--algorithm", type=KeySpec, choices=list(KeySpec), default=KeySpec.EC_P256)
    p.add_argument("--name", default="Gateway demo CA")
    p.set_defaults(handler=_guard(cmd_init_ca))

    for name, text in (
        ("generate", "generate a key (and a certificate from the demo CA if there is one)"),
        ("csr", "write a certificate request for a national CA (generating the key if absent)"),
    ):
        p = add(name, text)
        p.add_argument(
            "role",
            choices=[r.value for r in KeyRole]
            if name == "generate"
            else [r.value for r in KeyRole if r is not KeyRole.KEK],
        )
        _add_identity(p)
        p.add_argument(
            "--algorithm", type=KeySpec, choices=list(KeySpec), default=algorithms.DEFAULT_KEY_SPEC
        )
        p.add_argument(
            "--store",
            choices=("file", "token"),
            default=None,
            help="where the private key lives (default: token if [keys] pkcs11_module "
            "is set and the role is not tls, else file)",
        )
        p.add_argument("--dns", action="append", default=[], help="TLS: extra SAN DNS name")
        p.add_argument("--ip", action="append", default=[], help="TLS: extra SAN IP address")
        if name == "generate":
            p.add_argument("--force", action="store_true", help="replace an existing key")
            p.set_defaults(handler=_guard(cmd_generate))
        else:
            p.set_defaults(handler=_guard(cmd_csr))

    p = add("import", "import a certificate issued by a national CA for one of our keys")
    p.add_argument("role", choices=[r.value for r in KeyRole if r is not KeyRole.KEK])
    p.add_argument(
        "certificate", type=Path, metavar="CERT.pem", help="PEM: the certificate, then its issuers"
    )
    p.add_argument("--name", default="", help="official's key name")
    p.set_defaults(handler=_guard(cmd_import))

    p = add("list", "list keys: role, algorithm, subject, validity, where the key lives")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_guard(cmd_list))

    p = add("crl", "issue the demo CA's CRL (optionally revoking one of our certificates)")
    p.add_argument("--revoke", metavar="ROLE[:NAME]", action="append", default=[])
    p.set_defaults(handler=_guard(cmd_crl))


def _add_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="", help="official: key name (ivanov), file official-NAME")
    p.add_argument("--person", default="", help="official: the person's full name (CN)")
    p.add_argument("--title", default="", help="official: the position (title)")


def _guard(handler: Any) -> Any:
    """Turn configuration and key errors into a message and exit code 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args, now=datetime.now(UTC)))
        except (ConfigurationError, GatewayError, TokenError, FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG

    return run


def _store(args: argparse.Namespace) -> tuple[NodeConfig, KeyStore]:
    config = NodeConfig.from_toml(args.config)
    return config, KeyStore.from_config(config)


def _demo_ca(store: KeyStore) -> DemoCA | None:
    if not (store.demo_ca_dir / DemoCA.CERT_FILE).exists():
        return None
    return DemoCA.load(store.demo_ca_dir, store.passphrase())


def _profile(args: argparse.Namespace, config: NodeConfig, *, demo: bool) -> CertificateProfile:
    role = args.role
    if role == "official" and not (args.name and args.person and args.title):
        raise KeyStoreError(
            "an official's key needs --name (key name), --person (full name) and --title "
            "(position): they go into the certificate (docs/architecture.md)"
        )
    dns = tuple(args.dns) + (certificates.DEMO_TLS_DNS_NAMES if demo else ())
    ips = tuple(args.ip) + (certificates.DEMO_TLS_IP_ADDRESSES if demo else ())
    return CertificateProfile(
        role=role,
        body_id=config.node.body_id,
        common_name=args.person if role == "official" else "",
        title=args.title if role == "official" else "",
        demo=demo,
        dns_names=tuple(dict.fromkeys(dns)) if role == "tls" else (),
        ip_addresses=tuple(dict.fromkeys(ips)) if role == "tls" else (),
    )


def cmd_init_ca(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    if (store.demo_ca_dir / DemoCA.KEY_FILE).exists():
        raise KeyStoreError(f"{store.demo_ca_dir}: a demo CA already exists")
    store.demo_ca_dir.mkdir(parents=True, exist_ok=True)
    ca = DemoCA.create(now=now, name=args.name, spec=args.algorithm, directory=store.demo_ca_dir)
    ca.save(store.passphrase(), now=now)
    print(f"*** {DEMO_LABEL} ***")
    print(f"demo CA: {ca.certificate.subject.rfc4514_string()}")
    print(f"certificate: {store.demo_ca_dir / DemoCA.CERT_FILE}")
    print(f"CRL: {store.demo_ca_dir / DemoCA.CRL_FILE}")
    print('trust it on every demo node:  [trust] ca_file = ".../demo-ca/ca.crt.pem"')
    print('                              crl_files = [".../demo-ca/crl.pem"]')
    return EXIT_OK


def _where(args: argparse.Namespace, store: KeyStore, role: str) -> str:
    if args.store:
        if args.store == "token" and not store.uses_token:
            raise KeyStoreError("--store token: set [keys] pkcs11_module and pkcs11_token_label")
        return str(args.store)
    return "token" if store.uses_token and role != "tls" else "file"


def _new_key(args: argparse.Namespace, store: KeyStore, *, force: bool) -> Any:
    """Generate the private key in the file or on the token; return it."""
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    stem = key_stem(role, name)
    where = _where(args, store, role)
    key_path = store.key_path(role, name)
    if where == "file":
        if key_path.exists() and not force:
            raise KeyStoreError(
                f"{key_path} exists; pass --force to replace it (old signatures "
                "stay verifiable with the old certificate)"
            )
        key = algorithms.generate_private_key(args.algorithm)
        certificates.write_private_key(key_path, key, store.passphrase())
        return key
    token = store.token()
    if token.has_key(stem):
        raise KeyStoreError(f"token {store.keys.pkcs11_token_label!r} already holds {stem!r}")
    return token.generate(stem, args.algorithm)


def cmd_generate(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    if args.role == "kek":
        return _generate_kek(store, force=args.force)
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    ca = _demo_ca(store)
    profile = _profile(args, config, demo=ca is not None)
    key = _new_key(args, store, force=args.force)
    if ca is None:
        csr = certificates.build_csr(key, profile)
        store.csr_path(role, name).write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        print(
            f"key generated ({store.location(role, name)}); no demo CA here, so a request was "
            f"written: {store.csr_path(role, name)}"
        )
        print(
            "have it certified by your national CA, then run: gateway keys import "
            f"{role} CERT.pem --config {args.config}" + (f" --name {name}" if name else "")
        )
        return EXIT_OK
    cert = ca.issue(key.public_key(), profile, now=now)
    store.cert_path(role, name).write_bytes(certificates.pem_bundle([cert, ca.certificate]))
    print(f"*** {DEMO_LABEL} *** certificate from the demo CA")
    print(
        f"{role}{' ' + name if name else ''}: {algorithms.describe_key(key.public_key())}, "
        f"{cert.subject.rfc4514_string()}"
    )
    print(f"key: {store.location(role, name)}  certificate: {store.cert_path(role, name)}")
    return EXIT_OK


def _generate_kek(store: KeyStore, *, force: bool) -> int:
    # Imported here: the at-rest layer is needed only by this command.
    from gateway.crypto.at_rest import generate_file_kek

    if store.kek_path.exists():
        raise KeyStoreError(
            f"{store.kek_path} exists; replacing it would make stored data "
            "unreadable (rotation re-wraps data keys; --force does not apply)"
        )
    store.directory.mkdir(parents=True, exist_ok=True)
    key_id = generate_file_kek(store.kek_path, store.passphrase())
    print(f"kek {key_id}: {store.kek_path}")
    return EXIT_OK


def cmd_csr(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    profile = _profile(args, config, demo=False)
    if store.key_path(role, name).exists():
        key = store.read_private_key_file(store.key_path(role, name), key_stem(role, name))
    elif store.uses_token and store.token().has_key(key_stem(role, name)):
        key = store.token().private_key(key_stem(role, name))
    else:
        key = _new_key(args, store, force=False)
    csr = certificates.build_csr(key, profile)
    path = store.csr_path(role, name)
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    print(f"certificate request: {path}")
    print(f"subject: {csr.subject.rfc4514_string()}")
    print(
        f"then: gateway keys import {role} CERT.pem --config {args.config}"
        + (f" --name {name}" if name else "")
    )
    return EXIT_OK


def cmd_import(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    certs = certificates.load_pem_certificates(args.certificate.read_bytes())
    if not certs:
        raise KeyStoreError(f"{args.certificate}: no PEM certificate in it")
    leaf = certs[0]
    key_path = store.key_path(role, name)
    if key_path.exists():
        key = store.read_private_key_file(key_path, key_stem(role, name))
    elif store.uses_token:
        key = store.token().private_key(key_stem(role, name))
    else:
        raise KeyStoreError(f"no {role} key to match: {key_path} does not exist")
    if not certificates.same_public_key(key.public_key(), leaf.public_key()):
        raise KeyStoreError(
            f"{args.certificate} was issued for another key than {store.location(role, name)}"
        )
    if certificates.body_id_of(leaf) != config.node.body_id:
        raise KeyStoreError(
            f"{args.certificate}: organizationIdentifier "
            f"{certificates.body_id_of(leaf)!r} is not this node's body id "
            f"{config.node.body_id!r}"
        )
    mismatch = certificates.role_mismatch(leaf, str(role))
    if mismatch:
        raise KeyStoreError(f"{args.certificate} cannot serve as {role}: {mismatch}")
    if leaf.not_valid_after_utc < now:
        raise KeyStoreError(f"{args.certificate} expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    store.cert_path(role, name).write_bytes(certificates.pem_bundle(certs))
    print(
        f"imported {role}{' ' + name if name else ''}: {leaf.subject.rfc4514_string()} "
        f"(valid to {leaf.not_valid_after_utc:%Y-%m-%d})"
    )
    if len(certs) == 1:
        print(
            "note: the file held no issuer certificates; signatures will carry only the "
            "signer's certificate (peers must know the issuing CA)"
        )
    return EXIT_OK


def cmd_list(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    entries = store.entries()
    if args.json:
        print(json.dumps([e.to_json(now) for e in entries], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries:
        print(f"no keys in {store.directory}")
        return EXIT_OK
    for e in entries:
        days = e.days_to_expiry(now)
        validity = (
            f"{e.not_before:%Y-%m-%d}..{e.not_after:%Y-%m-%d} ({days} days left)"
            if e.not_after and e.not_before
            else "-"
        )
        label = f"{e.role}{' ' + e.name if e.name else ''}"
        print(f"{label:<20} {e.algorithm or '-':<20} {validity}")
        if e.subject:
            print(f"{'':<20} subject: {e.subject}")
        print(f"{'':<20} key: {e.location}")
    return EXIT_OK


def cmd_crl(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    ca = _demo_ca(store)
    if ca is None:
        raise KeyStoreError(f"no demo CA in {store.demo_ca_dir}; only the demo CA issues CRLs here")
    for spec in args.revoke:
        role, _, name = spec.partition(":")
        certs = certificates.load_pem_certificates(store.cert_path(role, name).read_bytes())
        ca.revoke(certs[0], at=now)
        print(f"revoked {spec}: serial {certs[0].serial_number:x}")
    ca.save(store.passphrase(), now=now)
    crl = x509.load_pem_x509_crl((store.demo_ca_dir / DemoCA.CRL_FILE).read_bytes())
    print(
        f"CRL: {store.demo_ca_dir / DemoCA.CRL_FILE} ({len(list(crl))} revoked, next update "
        f"{crl.next_update_utc:%Y-%m-%d})"
    )
    return EXIT_OK
