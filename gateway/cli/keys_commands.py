"""``gateway keys`` handlers (the parser is :mod:`gateway.cli.keys`, which stays light)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gateway.app import key_setup
from gateway.app import keys as app_keys
from gateway.app.context import AppContext
from gateway.cli.errors import ExitCode, Failure, fail
from gateway.cli.progress import ProgressPrinter
from gateway.config import NodeConfig
from gateway.crypto import algorithms
from gateway.crypto.algorithms import KeySpec
from gateway.crypto.certificates import DEMO_LABEL
from gateway.crypto.demo_ca import DemoCA
from gateway.crypto.keys.keystore import (
    KeyRole,
    KeyStore,
    KeyStoreError,
)

EXIT_OK = ExitCode.OK
EXIT_FAILED = ExitCode.REFUSED
EXIT_CONFIG = ExitCode.USAGE


def run(handler: Any, args: argparse.Namespace) -> int:
    """Run ``handler`` with the options in their types and the clock read once; a bad value
    (a time, a key name) is a usage error, the rest reaches :func:`gateway.cli.main`."""
    if getattr(args, "algorithm", None) is not None:
        args.algorithm = KeySpec(args.algorithm)
    try:
        return int(handler(args, now=datetime.now(UTC)))
    except ValueError as exc:
        raise Failure(str(exc), "INVALID_ARGUMENT", ExitCode.USAGE) from exc


def _store(args: argparse.Namespace) -> tuple[NodeConfig, KeyStore]:
    config = NodeConfig.from_toml(args.config)
    return config, KeyStore.from_config(config)


def _demo_ca(store: KeyStore) -> DemoCA | None:
    return app_keys.demo_ca_of(store)


def _target(args: argparse.Namespace) -> tuple[KeyRole, str, key_setup.Subject]:
    """The key the options name and what its certificate says besides the body."""
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    subject = key_setup.Subject(
        person=args.person or "", title=args.title or "", dns=tuple(args.dns), ips=tuple(args.ip)
    )
    return role, name, subject


def cmd_init_ca(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    ca = key_setup.init_demo_ca(store, args.name, args.algorithm, now)
    print(f"*** {DEMO_LABEL} ***")
    print(f"demo CA: {ca.certificate.subject.rfc4514_string()}")
    print(f"certificate: {store.demo_ca_dir / DemoCA.CERT_FILE}")
    print(f"CRL: {store.demo_ca_dir / DemoCA.CRL_FILE}")
    print('trust it on every demo node:  [trust] ca_file = ".../demo-ca/ca.crt.pem"')
    print('                              crl_files = [".../demo-ca/crl.pem"]')
    return EXIT_OK


def cmd_generate(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    if args.role == "kek":
        print(f"kek {key_setup.generate_kek(store)}: {store.kek_path}")
        return EXIT_OK
    role, name, subject = _target(args)
    made = key_setup.generate(
        config, store, role, name, args.algorithm, subject, now, where=args.store, force=args.force
    )
    if made.certificate is None:
        print(
            f"key generated ({made.location}); no demo CA here, so a request was "
            f"written: {made.csr_path}"
        )
        print(
            "have it certified by your national CA, then run: gateway keys import "
            f"{role} CERT.pem --config {args.config}" + (f" --name {name}" if name else "")
        )
        return EXIT_OK
    cert = made.certificate
    print(f"*** {DEMO_LABEL} *** certificate from the demo CA")
    print(
        f"{role}{' ' + name if name else ''}: {algorithms.describe_key(cert.public_key())}, "
        f"{cert.subject.rfc4514_string()}"
    )
    print(f"key: {made.location}  certificate: {store.cert_path(role, name)}")
    return EXIT_OK


def cmd_csr(args: argparse.Namespace, *, now: datetime) -> int:
    config, store = _store(args)
    role, name, subject = _target(args)
    path, asked = key_setup.write_csr(
        config, store, role, name, args.algorithm, subject, where=args.store
    )
    # The request itself on stdout, so `gateway keys csr seal … > seal.csr` is what the CA
    # (and openssl) reads; what was done goes to stderr.
    sys.stdout.write(path.read_text(encoding="ascii"))
    sys.stdout.flush()
    print(f"certificate request: {path}", file=sys.stderr)
    print(f"subject: {asked.rfc4514_string()}", file=sys.stderr)
    print(
        f"then: gateway keys import {role} CERT.pem --config {args.config}"
        + (f" --name {name}" if name else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_import(args: argparse.Namespace, *, now: datetime) -> int:
    role, name = KeyRole(args.role), args.name if args.role == "official" else ""
    pem = args.certificate.read_bytes()
    with _context(args) as (ctx, store):
        try:
            done = app_keys.import_certificate(
                replace(ctx, clock=lambda: now),
                store,
                role,
                name,
                args.generation,
                pem,
                source=str(args.certificate),
            )
        except app_keys.KeyRefused as exc:
            raise _refused(exc) from exc
    leaf = done.certificate
    print(
        f"imported {done.stem}: {leaf.subject.rfc4514_string()} "
        f"(valid to {leaf.not_valid_after_utc:%Y-%m-%d})"
    )
    if done.chain_length == 1:
        print(
            "note: the file held no issuer certificates; signatures will carry only the "
            "signer's certificate (peers must know the issuing CA)"
        )
    return EXIT_OK


def cmd_list(args: argparse.Namespace, *, now: datetime) -> int:
    with _context(args) as (ctx, store):
        listed = app_keys.list_keys(ctx, store)
    entries, ring = listed.entries, listed.ring
    if args.json:
        listing = [e.to_json(now) for e in entries] + [r.to_json() for r in ring]
        print(json.dumps(listing, ensure_ascii=False, indent=2))
        return EXIT_OK
    if not entries and not ring:
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
        if e.role != "demo-ca":
            label += f" #{e.generation}"
        status = f" [{e.status}]" if e.status else ""
        print(f"{label:<24} {e.algorithm or '-':<12} {validity}{status}")
        if e.activation_at is not None:
            print(f"{'':<24} active from: {e.activation_at.isoformat()}")
        if e.revoked_at is not None:
            reason = f" ({e.revocation_reason})" if e.revocation_reason else ""
            print(f"{'':<24} revoked at: {e.revoked_at.isoformat()}{reason}")
        if e.expiring:
            print(
                f"{'':<24} WARNING: expires in {days} days; rotate it: gateway keys rotate "
                f"{e.role}{':' + e.name if e.name else ''} --config {args.config}"
            )
        if e.subject:
            print(f"{'':<24} subject: {e.subject}")
        print(f"{'':<24} key: {e.location}")
    for r in ring:
        print(f"{'kek ' + r.key_id:<24} {'AES-256':<12} [{r.status}]")
        print(f"{'':<24} key: {r.location}")
    return EXIT_OK


def cmd_crl(args: argparse.Namespace, *, now: datetime) -> int:
    _, store = _store(args)
    if _demo_ca(store) is None:
        raise KeyStoreError(f"no demo CA in {store.demo_ca_dir}; only the demo CA issues CRLs here")
    if args.revoke:
        from gateway.crypto.keys.generations import RevocationReason

        # One path with `keys revoke`: the generation in force is revoked in the manifest too
        # (the node stops signing with it at once), audited, and put on the CRL.
        with _context(args) as (ctx, keys):
            for spec in args.revoke:
                role, name = app_keys.parse_key(spec)
                number = keys.active_generation(role, name, now)
                done = app_keys.revoke(
                    ctx,
                    keys,
                    role,
                    name,
                    number,
                    RevocationReason.KEY_COMPROMISE,
                    now,
                    demo_ca=keys.demo_ca_dir,
                )
                _print_revoked(done, role, name, args.config, keys.demo_ca_dir)
    path, revoked, next_update = key_setup.crl_state(store, now)
    print(f"CRL: {path} ({revoked} revoked, next update {next_update:%Y-%m-%d})")
    return EXIT_OK


# --- rotation: thin adapters over gateway.app.keys -------------------------------------------

PROGRESS_WIDTH = 40
"""Characters of the re-wrap progress bar: fits an 80-column terminal with the counts beside."""


@contextmanager
def _context(args: argparse.Namespace) -> Iterator[tuple[AppContext, KeyStore]]:
    """The node's context (store at the current schema, actor ``cli:<login>``) and its keys."""
    config = NodeConfig.from_toml(args.config)
    # A first SQLite store lives there; the node's account alone lists it.
    config.node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = KeyStore.from_config(config)
    with AppContext.from_config(config) as ctx:
        yield ctx, keys


def _parse_key(args: argparse.Namespace) -> tuple[KeyRole, str]:
    return app_keys.parse_key(str(args.key), getattr(args, "name", ""))


def _refused(exc: app_keys.KeyRefused) -> Failure:
    return Failure(str(exc), exc.code, ExitCode.REFUSED)


def cmd_rotate(args: argparse.Namespace, *, now: datetime) -> int:
    role, name = _parse_key(args)
    if role is not KeyRole.KEK and args.at is not None:
        raise KeyStoreError(
            "--at applies to `rotate kek`; a new key generation waits as pending until "
            "`gateway keys activate ROLE --generation N --at TIME`"
        )
    with _context(args) as (ctx, keys):
        if role is KeyRole.KEK:
            at = app_keys.parse_time(args.at or "now", now, "--at")
            kek = app_keys.rotate_kek_ring(ctx, keys, at=at, where=args.store)
            print(f"kek {kek.key_id}: {kek.location}")
            print(f"active from {kek.active_from.isoformat()} (previous: {kek.previous})")
            print(f"next: gateway keys rewrap --config {args.config}")
            return EXIT_OK
        made = app_keys.rotate(
            ctx, keys, role, name, algorithm=args.algorithm, where=args.store, demo_ca=args.demo_ca
        )
    number, spec = made.generation, f"{role}{':' + name if name else ''}"
    print(f"{made.stem}: new {made.algorithm} key, generation {number}, PENDING (not in use yet)")
    print(f"key: {keys.location(role, name, number)}")
    if made.demo_ca:
        print(f"*** {DEMO_LABEL} *** certificate: {keys.cert_path(role, name, number)}")
    else:
        print(f"certificate request: {keys.csr_path(role, name, number)}")
        print(
            f"have it certified, then: gateway keys import {role} CERT.pem --generation {number}"
            f"{' --name ' + name if name else ''} --config {args.config}"
        )
    print("next: publish the new certificate through the depositary (gateway keys publish), then")
    print(
        f"      gateway keys activate {spec} --generation {number} --at TIME --config {args.config}"
    )
    return EXIT_OK


def cmd_activate(args: argparse.Namespace, *, now: datetime) -> int:
    role, name = _parse_key(args)
    if role is KeyRole.KEK:
        raise KeyStoreError("a KEK is activated by `gateway keys rotate kek --at TIME`")
    at = app_keys.parse_time(args.at, now, "--at")
    with _context(args) as (ctx, keys):
        try:
            done = app_keys.activate(ctx, keys, role, name, args.generation, at, force=args.force)
        except app_keys.KeyRefused as exc:
            raise _refused(exc) from exc
    for note in done.notes:
        print(note)
    print(f"{done.stem} becomes active at {done.at.isoformat()}")
    print("every process of the node switches then, without restart")
    if role is KeyRole.TLS:
        print("the peer link takes the new TLS certificate for new connections at that time")
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace, *, now: datetime) -> int:
    from gateway.crypto.keys.generations import RevocationReason

    role, name = _parse_key(args)
    at = app_keys.parse_time(args.at, now, "--at")
    with _context(args) as (ctx, keys):
        try:
            done = app_keys.revoke(
                ctx,
                keys,
                role,
                name,
                args.generation,
                RevocationReason(args.reason),
                at,
                demo_ca=args.demo_ca,
            )
        except app_keys.KeyRefused as exc:
            raise _refused(exc) from exc
    _print_revoked(done, role, name, args.config, args.demo_ca)
    return EXIT_OK


def _print_revoked(
    done: app_keys.Revoked, role: KeyRole, name: str, config: Any, demo_ca: Any
) -> None:
    reason = done.reason.value
    print(
        f"{done.stem} REVOKED at {done.at.isoformat()} ({reason}); nothing signs with it any more"
    )
    if role is not KeyRole.TLS:
        print(
            "documents it signed stay valid where a proof of existence is held (the exchange's "
            "signed receipt on this node, an RFC 3161 timestamp); others turn INDETERMINATE"
        )
    if done.stranded:
        print(
            f"WARNING: {done.stranded} document(s) signed by it still wait in the outbox: each "
            "is signed again by the generation in force when it is delivered (audited as "
            "message.resigned); while none is active they wait (SIGNER_REVOKED_NO_SUCCESSOR)"
        )
    if done.crl_file is not None:
        print(f"demo CA CRL updated: {done.crl_file} (serial {done.crl_serial})")
        print("give the new CRL to every peer ([trust] crl_files)")
    else:
        print("ask the issuing CA to revoke the certificate and to publish its CRL")
    if done.still_active:
        spec = f"{role}{':' + name if name else ''}"
        with_ca = f" --demo-ca {demo_ca}" if demo_ca else ""
        print(
            f"WARNING: it was the active generation: signing with {spec} is refused until a new "
            "generation is active:\n"
            f"  gateway keys rotate {spec}{with_ca} --config {config}\n"
            f"  gateway keys activate {spec} --generation {done.next_generation} --at now "
            f"--config {config}"
        )
    print(
        "publish the change (the depositary drops the revoked certificate):\n"
        f"  gateway keys publish --config {config}"
    )


def cmd_publish(args: argparse.Namespace, *, now: datetime) -> int:
    with _context(args) as (ctx, keys):
        published = app_keys.publish(ctx, keys)
        body_id = _config_of(ctx).node.body_id
    if args.json:
        doc = {
            "body_id": body_id,
            "at": now.isoformat(),
            "certificates": [p.to_json() for p in published],
        }
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"# {body_id}: certificates for the next directory version ({now:%Y-%m-%d})")
    for p in published:
        print(f"# role={p.role.value} key={p.key} status={p.status.value} sha256={p.sha256}")
        print(p.pem, end="")
    return EXIT_OK


def _config_of(ctx: AppContext) -> NodeConfig:
    assert ctx.config is not None  # _context opened it from the file
    return ctx.config


class _RewrapPrinter(ProgressPrinter):
    def __call__(self, p: Any) -> None:
        share = 1.0 if p.total == 0 else min(p.done / p.total, 1.0)
        self.show(
            share,
            f"{p.done}/{p.total} keys re-wrapped",
            f"rewrap: {p.done}/{p.total} ({share:.0%}) under {p.active}",
        )


def cmd_rewrap(args: argparse.Namespace, *, now: datetime) -> int:
    printer = _RewrapPrinter(sys.stdout, PROGRESS_WIDTH)
    with _context(args) as (ctx, keys):
        done = app_keys.rewrap(
            ctx, keys, batch_size=args.batch_size, pause=args.pause, progress=printer
        )
        printer.done()
    result = done.result
    usage = ", ".join(f"{k}: {n}" for k, n in sorted(result.usage.items())) or "none"
    print(f"re-wrapped {result.rewrapped} keys in {result.seconds:.1f} s; keys per KEK: {usage}")
    if not result.complete:
        return fail(
            "часть ключей данных ещё под прежним KEK: повторите gateway keys rewrap",
            "REWRAP_INCOMPLETE",
            ExitCode.REFUSED,
        )
    for key_id in done.retired:
        print(
            f"nothing uses {key_id} now; from {app_keys.DESTROY_GRACE} after the switch on: "
            f"gateway keys destroy-kek {key_id} --config {args.config}"
        )
    return EXIT_OK


def cmd_destroy_kek(args: argparse.Namespace, *, now: datetime) -> int:
    with _context(args) as (ctx, keys):
        # The operator at the node's host reads the warnings here; the API and the console
        # make their caller send them back acknowledged (gateway.app.keys.destroy).
        for warning in app_keys.destruction_notice(ctx, keys, args.key_id).warnings:
            print(f"warning: {warning}", file=sys.stderr)
        key_id = app_keys.destroy(ctx, keys, args.key_id)
    print(
        f"KEK {key_id} destroyed; backups made under it can no longer be read, nor the retention "
        "period keys they hold"
    )
    return EXIT_OK
