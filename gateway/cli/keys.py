"""``gateway keys``: the demo CA, key generation, certificate requests, import, listing.

    gateway keys init-ca  --config NODE.toml                 demo CA (NOT FOR PRODUCTION)
    gateway keys generate ROLE --config NODE.toml [--name N --person P --title T]
    gateway keys csr      ROLE --config NODE.toml [--name N --person P --title T]
    gateway keys import   ROLE CERT.pem --config NODE.toml [--name N]
    gateway keys list     --config NODE.toml [--json]
    gateway keys crl      --config NODE.toml [--revoke ROLE[:NAME]]   demo CA's CRL

Rotation (docs/key-rotation.md; every step is recorded in the audit trail):

    gateway keys rotate   ROLE[:NAME] --config NODE.toml [--demo-ca DIR]   new pending generation
    gateway keys activate ROLE[:NAME] --generation N --at TIME --config NODE.toml [--force REASON]
    gateway keys revoke   ROLE[:NAME] --generation N --reason R --config NODE.toml [--demo-ca DIR]
    gateway keys publish  --config NODE.toml [--json]    certificates for the next directory
    gateway keys rotate   kek --config NODE.toml [--store file|token] [--at TIME]
    gateway keys rewrap   --config NODE.toml [--batch-size N] [--pause S]
    gateway keys destroy-kek KEY_ID --config NODE.toml

Passphrases and PINs come from the variables the configuration names, never from arguments.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

KEY_ROLES = ("seal", "official", "tls", "encryption", "kek")
"""The values of :class:`gateway.crypto.keys.keystore.KeyRole` (tests/cli checks they agree): named
here so that building the parser does not load the cryptography stack."""

KEY_SPECS = ("ec-p256", "ec-p384", "rsa-3072", "rsa-4096", "gost-256", "gost-512")
"""The values of :class:`gateway.crypto.algorithms.KeySpec`."""

DEFAULT_KEY_SPEC = "ec-p256"
""":data:`gateway.crypto.algorithms.DEFAULT_KEY_SPEC`."""

REVOCATION_REASONS = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)
"""The values of :class:`gateway.crypto.keys.generations.RevocationReason`."""


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="keys, certificates and the demo CA")
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True, type=Path, metavar="NODE.toml")
        return p

    p = add("init-ca", "create a demo CA in KEYS/demo-ca (DEMO — NOT FOR PRODUCTION)")
    p.add_argument("--algorithm", choices=KEY_SPECS, default="ec-p256")
    p.add_argument("--name", default="Gateway demo CA")
    p.set_defaults(handler=_handler("cmd_init_ca"))

    for name, text in (
        ("generate", "generate a key (and a certificate from the demo CA if there is one)"),
        ("csr", "write a certificate request for a national CA (generating the key if absent)"),
    ):
        p = add(name, text)
        p.add_argument(
            "role",
            choices=KEY_ROLES if name == "generate" else [r for r in KEY_ROLES if r != "kek"],
        )
        _add_identity(p)
        p.add_argument("--algorithm", choices=KEY_SPECS, default=DEFAULT_KEY_SPEC)
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
            p.set_defaults(handler=_handler("cmd_generate"))
        else:
            p.set_defaults(handler=_handler("cmd_csr"))

    p = add("import", "import a certificate issued by a national CA for one of our keys")
    p.add_argument("role", choices=[r for r in KEY_ROLES if r != "kek"])
    p.add_argument(
        "certificate",
        type=Path,
        metavar="CERT.pem",
        help="PEM (the certificate, then its issuers) or one DER certificate",
    )
    p.add_argument("--name", default="", help="official's key name")
    p.add_argument(
        "--generation", type=int, default=1, help="the generation the certificate is for"
    )
    p.set_defaults(handler=_handler("cmd_import"))

    p = add("list", "list keys: role, generation, status, validity (expiring ones flagged)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_handler("cmd_list"))

    _register_rotation(add)

    p = add("crl", "issue the demo CA's CRL (optionally revoking one of our certificates)")
    p.add_argument(
        "--revoke",
        metavar="ROLE[:NAME]",
        action="append",
        default=[],
        help="revoke the generation in force: the same as `keys revoke … --reason keyCompromise`",
    )
    p.set_defaults(handler=_handler("cmd_crl"))


def _add_identity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default="", help="official: key name (ivanov), file official-NAME")
    p.add_argument("--person", default="", help="official: the person's full name (CN)")
    p.add_argument("--title", default="", help="official: the position (title)")


def _register_rotation(add: Any) -> None:
    p = add("rotate", "new pending generation of a key (or a new KEK, made active)")
    p.add_argument("key", metavar="ROLE[:NAME]", help="seal, tls, encryption, official:NAME, kek")
    p.add_argument("--name", default="", help="official's key name (or ROLE:NAME)")
    p.add_argument(
        "--demo-ca", type=Path, default=None, metavar="DIR", help="certify with this demo CA"
    )
    p.add_argument("--algorithm", choices=KEY_SPECS, default=DEFAULT_KEY_SPEC)
    p.add_argument(
        "--store",
        choices=("file", "token"),
        default=None,
        help="where the new key lives (default: where the active one lives)",
    )
    p.add_argument(
        "--at", default=None, help="kek only: when it becomes active (default now; ISO 8601)"
    )
    p.set_defaults(handler=_handler("cmd_rotate"))

    p = add("activate", "schedule the switch to a generation at a chosen time")
    p.add_argument("key", metavar="ROLE[:NAME]")
    p.add_argument("--generation", type=int, required=True)
    p.add_argument("--at", required=True, help="'now' or an ISO 8601 time with zone")
    p.add_argument(
        "--force",
        default=None,
        metavar="REASON",
        help="activate although the directory in force does not list the certificate (audited)",
    )
    p.set_defaults(handler=_handler("cmd_activate"))

    p = add("revoke", "stop a generation at once (and put it on the demo CA's CRL)")
    p.add_argument("key", metavar="ROLE[:NAME]")
    p.add_argument("--generation", type=int, required=True)
    p.add_argument("--reason", required=True, choices=REVOCATION_REASONS, metavar="REASON")
    p.add_argument("--at", default="now", help="revocation time (default now; may be earlier)")
    p.add_argument("--demo-ca", type=Path, default=None, metavar="DIR")
    p.set_defaults(handler=_handler("cmd_revoke"))

    p = add("publish", "certificates the depositary must list in the next directory version")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_handler("cmd_publish"))

    p = add("rewrap", "re-wrap every stored data key under the active KEK (resumable)")
    p.add_argument("--batch-size", type=int, default=None, help="keys per transaction")
    p.add_argument("--pause", type=float, default=0.0, help="seconds between batches")
    p.set_defaults(handler=_handler("cmd_rewrap"))

    p = add("destroy-kek", "destroy a retired KEK once nothing stored uses it")
    p.add_argument("key_id", metavar="KEY_ID")
    p.set_defaults(handler=_handler("cmd_destroy_kek"))


def _handler(name: str) -> Any:
    """The handler ``name`` of :mod:`gateway.cli.keys_commands`, imported when it runs."""

    def run(args: argparse.Namespace) -> int:
        commands = importlib.import_module("gateway.cli.keys_commands")
        return int(commands.run(getattr(commands, name), args))

    return run
