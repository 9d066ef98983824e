"""A node's pre-flight: everything it needs, checked before it is started, changing nothing
(the database is not migrated, no file is created). ``gateway check-config`` prints each
:class:`Finding`; ``gateway serve`` runs the same checks (:func:`refuse_on_failure`) before it
binds anything or touches the store, and does not start if one fails.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.app.failures import ExitCode, Failure, explain
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


def refuse_on_failure(config: NodeConfig) -> None:
    """``gateway serve``'s pre-flight: every check, warnings logged; on a failure each ``FAIL``
    is logged and :class:`Failure` names the first (its code and exit code) and how many
    there were, so the node does not half start."""
    log = logging.getLogger("gateway.check")
    failures = []
    for finding in run_checks(config):
        if finding.state == "FAIL":
            log.error("%s", finding.line())
            failures.append(finding)
        elif finding.state == "warn":
            log.warning("%s", finding.line())
    if failures:
        first = failures[0]
        others = len(failures) - 1
        more = f" (и ещё {others}: см. gateway check-config)" if others else ""
        raise Failure(
            f"узел не запущен: {first.check}: {first.detail}{more}", first.code, first.exit_code
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
        _clock,
        _https,
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
    from gateway.crypto.keys.keystore import KEY_SUFFIX

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
    from gateway.crypto.keys.keystore import KeyStore
    from gateway.crypto.trust import TrustList

    keys = KeyStore.from_config(config)
    trust = TrustList.configured(config)
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
    yield _limits(config, next(b for b in directory.bodies if b.id == config.node.body_id))


def _limits(config: NodeConfig, body: Any) -> Finding:
    """The node enforces its [limits]; senders refuse by what the directory publishes: when
    they differ, peers send what this node refuses (or refuse what it would take)."""
    ours = (config.limits.max_message_bytes, config.limits.max_attachment_bytes)
    published = (body.max_message_bytes, body.max_attachment_bytes)
    if ours != published:
        return warn(
            "limits",
            f"[limits] max_message_bytes, max_attachment_bytes = {ours[0]}, {ours[1]}, а "
            f"справочник публикует для {body.id} {published[0]}, {published[1]} "
            "(Limits/MaxMessageBytes, MaxAttachmentBytes): согласуйте с депозитарием "
            "(docs/attachments.md)",
        )
    return ok(
        "limits", f"доставка до {ours[0]} байт, вложение до {ours[1]} байт, как в справочнике"
    )


def _database(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    from gateway.app.database import SchemaState, StoreNotCurrent, schema_status_of

    if (
        config.database_url.startswith("sqlite")
        and not (config.node.data_dir / "gateway.db").exists()
    ):
        yield ok("database", "SQLite-файла нет: gateway db upgrade (или serve) создаст его")
        return
    kind, status = schema_status_of(config.database_url)
    if status.state is SchemaState.CURRENT:
        yield ok("database", f"{kind} доступна, схема {status.current} (последняя)")
    elif status.state is SchemaState.EMPTY:
        yield ok("database", f"{kind} доступна, пуста: gateway db upgrade (или serve) создаст её")
    elif status.state is SchemaState.BEHIND:
        yield warn(
            "database",
            f"{kind} доступна, схема {status.current}, последняя {status.head}: сделайте "
            "резервную копию и выполните gateway db upgrade (serve обновит её сам)",
        )
    else:
        error = StoreNotCurrent(status)
        yield failed("database", str(error), error.code, ExitCode.UNAVAILABLE)


def _clock(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    """The host's clock, without asking a time server (a node may have no route to one):

    * PostgreSQL: the database server's clock (``SELECT now()``), a second machine's;
    * the signed directory's ``IssuedAt``: the depositary signed it, so it cannot be later
      than now;
    * the modification times of the node's own files (NODE.toml, directory, key manifest,
      store): a clock set back leaves them in the future;
    * the kernel's NTP state (``adjtimex``): unsynchronised is a warning only.

    Peers refuse documents signed more than :data:`gateway.crypto.trust.CLOCK_SKEW` off
    their clock, so that is the limit."""
    from gateway.crypto.trust import CLOCK_SKEW

    limit = int(CLOCK_SKEW.total_seconds() // 60)
    found = False
    for source, moment in _clock_references(config, now):
        found = True
        skew = now - moment
        if source.startswith("mtime") and skew < -CLOCK_SKEW:
            yield warn(
                "clock",
                f"{source} изменён {moment:%Y-%m-%d %H:%M:%S} UTC, позже, чем сейчас: часы "
                "переводили назад?",
            )
        elif not source.startswith("mtime") and abs(skew) > CLOCK_SKEW:
            yield failed(
                "clock",
                f"часы узла расходятся с {source} на {int(skew.total_seconds())} с (допустимо "
                f"{limit} мин): узлы-партнёры отклонят его подписи; настройте синхронизацию "
                "времени (chrony, systemd-timesyncd)",
                "CLOCK_SKEW",
                ExitCode.UNAVAILABLE,
            )
        else:
            yield ok("clock", f"{source}: расхождение {int(skew.total_seconds())} с")
    if _kernel_clock_unsynchronised():
        yield warn("clock", "ядро сообщает: часы не синхронизированы (NTP не работает?)")
    elif not found:
        yield ok("clock", "сверять не с чем")


def _clock_references(config: NodeConfig, now: datetime) -> Iterator[tuple[str, datetime]]:
    if not config.database_url.startswith("sqlite"):
        from gateway.app.database import server_clock

        yield "часами сервера PostgreSQL", server_clock(config.database_url).astimezone(UTC)
    if config.trust.directory_file is not None and config.trust.directory_file.is_file():
        from gateway.exchange.directory import parse_directory_xml
        from gateway.exchange.node import load_directory

        try:
            claimed = parse_directory_xml(config.trust.directory_file.read_bytes()).issued_at
            # Verified as of the time it claims: the depositary's signature vouches for it.
            issued = load_directory(config, at=claimed).issued_at
        except Exception:  # the directory check has said what is wrong
            issued = None
        if issued is not None and issued > now:
            # Only a directory signed "in the future" says the clock is behind: an old one
            # is merely old.
            yield "IssuedAt справочника органов", issued
    for path in (
        config.path,
        config.trust.directory_file,
        config.keys.dir,
        config.node.data_dir / "gateway.db",
    ):
        if path is not None and path.exists():
            moment = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            yield f"mtime {path}", moment


def _kernel_clock_unsynchronised() -> bool:
    """``adjtimex`` read-only (Linux): TIME_ERROR (5) means the kernel's clock is not kept in
    sync by NTP. Anywhere else, or if the call fails: unknown, not a finding."""
    import ctypes
    import ctypes.util

    time_error = 5
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        buffer = ctypes.create_string_buffer(512)  # struct timex; modes 0: only reads
        return bool(libc.adjtimex(buffer) == time_error)
    except (OSError, AttributeError):
        return False


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _https(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    """``[api]``/``[console]`` HTTPS: the pair loads, the key is private, the certificate is
    in force; without it, a listener off loopback sends tokens and passwords in clear."""
    from cryptography import x509

    from gateway.app.tls import local_server_context
    from gateway.crypto.keys.keystore import KeyStore

    for name in ("api", "console"):
        section = getattr(config, name)
        check = f"https {name}"
        if section.tls_cert_file is None or section.tls_key_file is None:
            if section.host in LOOPBACK_HOSTS:
                yield ok(check, f"выключен ({section.host}: только эта машина)")
            else:
                yield warn(
                    check,
                    f"[{name}] host = {section.host} без tls_cert_file: токены и пароли идут "
                    "открытым текстом; задайте tls_cert_file и tls_key_file",
                )
            continue
        keys = KeyStore.from_config(config)
        try:
            local_server_context(
                section.tls_cert_file, section.tls_key_file, password=keys.passphrase
            )
        finally:
            keys.close()
        yield _private(section.tls_key_file, f"{check} key", "chmod 600")
        certificate = x509.load_pem_x509_certificate(section.tls_cert_file.read_bytes())
        yield _certificate(check, certificate, now)


def _ports(config: NodeConfig, now: datetime) -> Iterator[Finding]:
    for name in ("peer", "api", "console"):
        section = getattr(config, name)
        if section.port == 0:
            yield ok(f"port {name}", f"{section.host}:0 (свободный порт при запуске)")
            continue
        # A test bind only, closed at once: the node binds the port itself when it starts.
        with socket.socket(socket.AF_INET6 if ":" in section.host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if getattr(section, "reuse_port", False):
                # As the node binds it: a port held or served with SO_REUSEPORT by this
                # account is free to it (a restart beside the old process).
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
