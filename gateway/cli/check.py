"""``gateway check-config``: everything a node needs, checked before it is started.

One line per check (``ok``, ``warn`` or ``FAIL``, the check's name, what was found and, on a
failure, what to do and the error code); then, if anything failed, the usual error line and the
exit code of the first failure (2: NODE.toml must change, 3: a file, the database or a port is
unavailable). Nothing is changed: the database is not migrated, no file is created.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.errors import CommandError, ExitCode, explain

if TYPE_CHECKING:
    from gateway.config import NodeConfig

EXPIRY_WARNING = timedelta(days=30)
"""A certificate in use that ends sooner than this is a warning: order its successor now."""

CRL_WARNING = timedelta(days=1)
"""A CRL whose next issue is due sooner than this is a warning: check that it is fetched."""

PRIVATE_MODE_BITS = stat.S_IRWXG | stat.S_IRWXO
"""A private key, a secret or the data folder must give its group and others nothing."""


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    state: str
    """``ok``, ``warn`` or ``FAIL``."""
    detail: str
    code: str = ""
    exit_code: ExitCode = ExitCode.OK

    def line(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.state:<4}  {self.check}: {self.detail}{code}"


def ok(check: str, detail: str) -> Finding:
    return Finding(check, "ok", detail)


def warn(check: str, detail: str) -> Finding:
    return Finding(check, "warn", detail)


def failed(check: str, detail: str, code: str, exit_code: ExitCode = ExitCode.USAGE) -> Finding:
    return Finding(check, "FAIL", detail, code, exit_code)


def register(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check-config",
        help="check NODE.toml: files, key permissions, keys, certificates, directory, database, "
        "time zone, ports (changes nothing)",
    )
    check.add_argument("--config", required=True, type=Path, help="the node's TOML file")
    check.set_defaults(handler=_check_config)


def _check_config(args: argparse.Namespace) -> int:
    from gateway.config import NodeConfig

    try:
        config = NodeConfig.from_toml(args.config)
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise
        print(failed("config", explained.message_ru, explained.code, explained.exit_code).line())
        raise _summary(1) from None
    print(ok("config", str(config.path)).line(), flush=True)
    failures = [f for f in run_checks(config) if _printed(f).state == "FAIL"]
    if failures:
        raise _summary(len(failures), failures[0].exit_code)
    return 0


def _printed(finding: Finding) -> Finding:
    print(finding.line(), flush=True)
    return finding


def _summary(count: int, exit_code: ExitCode = ExitCode.USAGE) -> CommandError:
    return CommandError(
        f"проверка конфигурации не пройдена: {count} (строки FAIL выше; исправьте и повторите)",
        "CONFIG_CHECK_FAILED",
        exit_code,
    )


def run_checks(
    config: NodeConfig, now: datetime | None = None, *, skip: frozenset[str] = frozenset()
) -> Iterator[Finding]:
    """Every check after NODE.toml was read, in order, but those named in ``skip``
    (``ports``, ``database``, …); a check that raises is one failure."""
    now = now or datetime.now(UTC)
    checks: list[Callable[[NodeConfig, datetime], Iterator[Finding]]] = [
        _timezone,
        _originals,
        _data_dir,
        _trust_files,
        _crls,
        _key_files,
        _secrets,
        _keys,
        _directory,
        _database,
        _ports,
    ]
    for check in checks:
        name = check.__name__.strip("_").replace("_", "-")
        if name in skip:
            continue
        try:
            yield from check(config, now)
        except Exception as exc:
            explained = explain(exc)
            if explained is None:
                yield failed(name, f"{type(exc).__name__}: {exc}", "INTERNAL", ExitCode.INTERNAL)
            else:
                yield failed(name, explained.message_ru, explained.code, explained.exit_code)


def _originals(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    """``[originals] send_within_days``: read as the reminder job reads it (a bad value stops
    ``gateway serve``'s scheduler)."""
    from gateway.app.scheduled import send_within_days

    days = send_within_days(config)
    yield ok(
        "originals", f"оригинал почтой — в течение {days} раб. дн. (ч. 1 ст. 10 Соглашения СНГ)"
    )


def _timezone(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(config.node.timezone))
    yield ok("timezone", f"{config.node.timezone} (сейчас {local:%Y-%m-%d %H:%M %z})")


def _data_dir(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    if not config.database_url.startswith("sqlite"):
        yield ok("data-dir", "хранилище в PostgreSQL, файла базы нет")
        return
    folder = config.node.data_dir
    if not folder.exists():
        parent = next(p for p in folder.parents if p.exists())
        if os.access(parent, os.W_OK | os.X_OK):
            yield ok("data-dir", f"{folder} будет создан (0700) при первом запуске")
        else:
            yield failed(
                "data-dir",
                f"{folder} нет, и создать его в {parent} нельзя: создайте его (0700) от имени "
                "учётной записи узла",
                "FILE_FORBIDDEN",
                ExitCode.UNAVAILABLE,
            )
        return
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        yield failed(
            "data-dir",
            f"{folder}: не каталог или нет прав на запись",
            "FILE_FORBIDDEN",
            ExitCode.UNAVAILABLE,
        )
        return
    yield _private(folder, "data-dir", "chmod 700")
    store = folder / "gateway.db"
    if store.exists():
        yield _private(store, "store-file", "chmod 600")


def _private(path: Path, check: str, fix: str) -> Finding:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & PRIVATE_MODE_BITS:
        return failed(
            check,
            f"{path}: права {mode:04o} открывают его другим; {fix} {path}",
            "FILE_PERMISSIONS",
        )
    return ok(check, f"{path} ({mode:04o})")


def _trust_files(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    trust = config.trust
    named = {
        "ca_file": trust.ca_file,
        "depositary_ca_file": trust.depositary_ca_file,
        "directory_file": trust.directory_file,
        **{f"crl_files[{i}]": p for i, p in enumerate(trust.crl_files)},
    }
    for key, path in named.items():
        if path is None:
            continue
        if not path.is_file():
            yield failed(
                "trust-file",
                f"[trust] {key}: файла {path} нет; укажите верный путь",
                "FILE_NOT_FOUND",
                ExitCode.UNAVAILABLE,
            )
        elif not os.access(path, os.R_OK):
            yield failed(
                "trust-file",
                f"[trust] {key}: {path} нельзя прочитать",
                "FILE_FORBIDDEN",
                ExitCode.UNAVAILABLE,
            )
        else:
            yield ok("trust-file", f"[trust] {key} = {path}")


def _key_files(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from gateway.crypto.keystore import KEY_SUFFIX

    folder = config.keys.dir
    if not folder.is_dir():
        yield failed(
            "keys-dir",
            f"[keys] dir: каталога {folder} нет; создайте ключи: gateway keys generate …",
            "FILE_NOT_FOUND",
            ExitCode.UNAVAILABLE,
        )
        return
    yield ok("keys-dir", str(folder))
    secrets = [p for p in sorted(folder.iterdir()) if p.name.endswith(KEY_SUFFIX)]
    secrets += sorted(folder.glob("kek*.key"))
    for path in secrets:
        yield _private(path, "private-key-file", "chmod 600")


def _secrets(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from gateway.credentials import CREDENTIAL_NAMES, find_secret

    wanted = [("keys", "passphrase", config.keys.passphrase_file, config.keys.passphrase_env)]
    if config.keys.pkcs11_module is not None:
        wanted.append(
            ("keys", "pkcs11_pin", config.keys.pkcs11_pin_file, config.keys.pkcs11_pin_env)
        )
    if config.database.url:
        wanted.append(
            (
                "database",
                "password",
                config.database.password_file,
                config.database.password_env,
            )
        )
    for section, key, file, env in wanted:
        found = find_secret(key=key, file=file, env=env, environ=os.environ)
        if found is None and key == "password":
            yield ok("secret", f"[{section}] password: не задан (сервер его не спрашивает?)")
            continue
        if found is None:
            yield failed(
                "secret",
                f"[{section}] {key}: не найден; задайте {key}_file, учётные данные systemd "
                f"{CREDENTIAL_NAMES[key]!r} или переменную {env}",
                "PASSWORD_MISSING",
            )
            continue
        yield ok("secret", f"[{section}] {key}: источник — {found[1]}")
        if file is not None:
            yield _private(file, "secret-file", "chmod 600")


def _keys(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from gateway.crypto.keystore import KeyStore
    from gateway.crypto.trust import TrustList

    keys = KeyStore.from_config(config)
    trust = TrustList.from_config(config) if config.trust.ca_file is not None else None
    roles: list[tuple[str, Callable[[], Any]]] = [
        ("seal", lambda: keys.seal(at=now)),
        ("tls", lambda: keys.tls(at=now)),
        ("encryption", lambda: keys.encryption(at=now)),
    ]
    if config.keys.official:
        roles.append((f"official {config.keys.official}", lambda: keys.official(at=now)))
    try:
        for role, load in roles:
            try:
                key = load()  # decrypts it: the passphrase, the file and the certificate fit
            except Exception as exc:
                explained = explain(exc)
                if explained is None:
                    raise
                yield failed(f"key {role}", explained.message_ru, explained.code)
                continue
            finding = _certificate(f"key {role}", key.certificate, now)
            if finding.state == "ok" and trust is not None:
                finding = _chain(finding, trust, key, now)
            yield finding
    finally:
        keys.close()


def _chain(finding: Finding, trust: Any, key: Any, now: datetime) -> Finding:
    """The key's certificate must chain to ``[trust] ca_file`` and not be revoked by the CRLs
    of ``crl_files`` (what peers check of it): else every peer refuses what it signs."""
    result = trust.validate(key.certificate, key.chain, moment=now, at=now)
    if result.passed:
        return replace(finding, detail=f"{finding.detail}, цепочка до [trust] ca_file верна")
    return failed(
        finding.check,
        f"сертификат не проходит проверку по [trust] ca_file и crl_files: {result.message}",
        "CERT_CHAIN",
    )


def _crls(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    """A CRL past its nextUpdate makes every certificate it covers INDETERMINATE (fail
    closed): each peer's signatures would be refused until a fresh one is installed."""
    from cryptography import x509

    for path in config.trust.crl_files:
        if not path.is_file():
            continue  # trust-file has said so
        data = path.read_bytes()
        crl = (
            x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
        )
        next_update = crl.next_update_utc
        if next_update is None:
            yield warn("crl", f"{path}: без nextUpdate — свежесть не проверить")
        elif next_update <= now:
            stale = (
                f"{path}: устарел {next_update:%Y-%m-%d %H:%M} UTC; установите свежий список "
                "отзыва (узел подхватит его без перезапуска)"
            )
            if config.trust.require_revocation_check:
                yield failed("crl", stale, "CRL_STALE")
            else:
                yield warn("crl", stale)
        elif next_update - now < CRL_WARNING:
            yield warn("crl", f"{path}: следующий выпуск до {next_update:%Y-%m-%d %H:%M} UTC")
        else:
            yield ok("crl", f"{path}: действует до {next_update:%Y-%m-%d %H:%M} UTC")


def _certificate(check: str, certificate: Any, now: datetime) -> Finding:
    ends = certificate.not_valid_after_utc
    starts = certificate.not_valid_before_utc
    from cryptography.x509.oid import NameOID

    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else certificate.subject.rfc4514_string()
    if now < starts:
        return failed(
            check, f"{subject}: сертификат действует лишь с {starts:%Y-%m-%d}", "CERT_NOT_YET_VALID"
        )
    if ends <= now:
        return failed(
            check,
            f"{subject}: сертификат истёк {ends:%Y-%m-%d}; выпустите новый (gateway keys csr)",
            "CERT_EXPIRED",
        )
    days = (ends - now).days
    if ends - now < EXPIRY_WARNING:
        return warn(check, f"{subject}: истекает через {days} дн. ({ends:%Y-%m-%d}); ротируйте")
    return ok(check, f"{subject}, действует до {ends:%Y-%m-%d} ({days} дн.)")


def _directory(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from gateway.exchange.node import load_directory

    directory = load_directory(config, at=now)  # verifies the depositary's signature
    listed = any(body.id == config.node.body_id for body in directory.bodies)
    detail = (
        f"версия {directory.version}, подпись депозитария {directory.depositary} верна, "
        f"органов {len(directory.bodies)}"
    )
    if not listed:
        yield failed(
            "directory",
            f"{detail}, но {config.node.body_id} в нём нет: узел не примут",
            "BODY_NOT_IN_DIRECTORY",
        )
        return
    yield ok("directory", detail)


def _database(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from gateway.app.database import head_revision, schema_state

    if (
        config.database_url.startswith("sqlite")
        and not (config.node.data_dir / "gateway.db").exists()
    ):
        yield ok("database", "SQLite-файл будет создан при первом запуске")
        return
    state = schema_state(config.database_url)
    revision, head, kind = state.revision, head_revision(), state.dialect
    if revision == head:
        yield ok("database", f"{kind} доступна, схема {revision} (последняя)")
    elif revision is None:
        yield ok("database", f"{kind} доступна, пуста: gateway serve создаст схему")
    else:
        yield warn(
            "database", f"{kind} доступна, схема {revision}; gateway serve обновит до {head}"
        )


def _ports(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    for name in ("peer", "api", "console"):
        section = getattr(config, name)
        if section.port == 0:
            yield ok(f"port {name}", f"{section.host}:0 (свободный порт при запуске)")
            continue
        # A test bind only, closed at once: the node binds the port itself when it starts.
        with socket.socket(socket.AF_INET6 if ":" in section.host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((section.host, section.port))
            except OSError as exc:
                taken = exc.errno == errno.EADDRINUSE
                yield failed(
                    f"port {name}",
                    f"[{name}] {section.host}:{section.port}: "
                    + (
                        "занят другим процессом; остановите его или укажите другой port"
                        if taken
                        else f"открыть нельзя ({exc.strerror}): порт ниже 1024 требует прав, "
                        "адрес должен принадлежать этой машине"
                    ),
                    "PORT_IN_USE" if taken else "PORT_UNAVAILABLE",
                    ExitCode.UNAVAILABLE,
                )
                continue
        yield ok(f"port {name}", f"{section.host}:{section.port} свободен")
