"""A node's configuration: one TOML file, loaded through :meth:`NodeConfig.from_toml`.

Unknown sections or keys, missing mandatory keys and wrongly typed values are refused with a
:class:`~gateway.model.problems.ConfigurationError` naming the file, the key and what to do.
Relative paths are relative to the configuration file's folder. Secrets (key passphrases,
PKCS#11 PINs, the database password) are never in this file: it names the file or environment
variable holding them, or they come as systemd credentials (:mod:`gateway.credentials`); a
password written into ``[database] url`` is refused.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway import credentials
from gateway.logs import FORMATS as LOG_FORMATS
from gateway.logs import LEVELS as LOG_LEVELS
from gateway.model.bodies import BODY_ID_PATTERN
from gateway.model.limits import (
    BODY_BYTES_IN_FLIGHT,
    DEFAULT_MAX_ATTACHMENT_BYTES,
    DEFAULT_MAX_DELIVERY_BYTES,
    MAX_MESSAGE_BYTES,
    PEER_BURST,
    PEER_CONCURRENT_REQUESTS,
    PEER_RATE_PER_SECOND,
)
from gateway.model.problems import ConfigurationError


@dataclass(frozen=True, slots=True)
class NodeSection:
    body_id: str
    """This node's body id (``RU-FSSP``): the sender of everything it signs."""
    data_dir: Path = Path("node-data")
    """Where the node keeps its database and working files."""
    timezone: str = "UTC"
    """Node-local time zone (IANA name) for schedules and day boundaries."""


@dataclass(frozen=True, slots=True)
class DatabaseSection:
    url: str = ""
    """SQLAlchemy URL without a password. Empty: SQLite file ``gateway.db`` in
    ``node.data_dir``."""
    password_env: str = "GATEWAY_DB_PASSWORD"  # noqa: S105 - a variable name, not a secret
    """Environment variable holding the database password (if the server asks for one)."""
    password_file: Path | None = None
    """Or a file holding it (first line); wins over the credential and the variable."""

    def __post_init__(self) -> None:
        if urlsplit(self.url).password is not None:
            raise ConfigurationError(
                "url holds a password, which must not be written in NODE.toml; remove it from "
                f"the URL and {credentials.sources('password', self.password_env, 'database')}"
            )


@dataclass(frozen=True, slots=True)
class KeysSection:
    dir: Path = Path("keys")
    passphrase_env: str = "GATEWAY_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
    """Environment variable holding the passphrase of the PKCS#8 key files."""
    passphrase_file: Path | None = None
    """Or a file holding it (first line); wins over the variable when set."""
    pkcs11_module: Path | None = None
    """PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so); keys then live on the token."""
    pkcs11_token_label: str = ""
    pkcs11_pin_env: str = "GATEWAY_PKCS11_PIN"
    pkcs11_pin_file: Path | None = None
    """Or a file holding the PIN (first line); wins over the credential and the variable."""
    official: str = ""
    """Name of the official key used for outgoing signatures (``keys/official-<name>``)."""


@dataclass(frozen=True, slots=True)
class TrustSection:
    ca_file: Path | None = None
    """PEM file of trusted CA certificates (until/besides the directory of bodies)."""
    crl_files: tuple[Path, ...] = ()
    depositary_ca_file: Path | None = None
    """Trust anchor of the depositary that signs the directory of bodies (CIS Art. 18)."""
    directory_file: Path | None = None
    """The current signed directory of bodies."""
    require_revocation_check: bool = True
    """Fail closed: a certificate whose revocation status is unknown is INDETERMINATE."""


@dataclass(frozen=True, slots=True)
class ListenSection:
    host: str = "127.0.0.1"
    port: int = 0
    """0: pick a free port (tests, demo)."""


@dataclass(frozen=True, slots=True)
class PeerSection(ListenSection):
    """The peer endpoint's listener ([peer])."""

    reuse_port: bool = False
    """Bind with SO_REUSEPORT, so that another socket of the same user may hold or share the
    port: a new ``gateway serve`` can start on the port before the old one stops (a restart
    without refused peers), and a port the directory lists can be held while no node runs.
    Off by default: any process of the same user could then take connections on the port."""


MAX_SERVER_TIMEOUT = 3600.0
"""Longest header or keep-alive timeout the configuration takes (an hour: aiohttp's default)."""


@dataclass(frozen=True, slots=True)
class ServerSection(ListenSection):
    """A listener of the local side ([api], [console]) with its connection limits; unset keys
    take gateway.web.server's defaults (HEADER_TIMEOUT 10 s, LOCAL_KEEPALIVE_TIMEOUT 75 s)."""

    header_timeout: float | None = None
    """Seconds a client has to send a whole request head; then a 408 and the connection is
    closed (a client trickling header bytes must not hold a socket for minutes)."""
    keepalive_timeout: float | None = None
    """Idle seconds before a keep-alive connection is closed."""
    tls_cert_file: Path | None = None
    """PEM certificate (chain) to serve HTTPS with; with ``tls_key_file``. The console's
    cookies are then ``Secure`` (``__Host-`` prefix). Unset: plain HTTP (loopback only)."""
    tls_key_file: Path | None = None
    """Its private key, PEM; if encrypted, with the node's key passphrase ([keys])."""

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigurationError(
                "tls_cert_file and tls_key_file go together: set both (HTTPS) or neither"
            )
        for name in ("header_timeout", "keepalive_timeout"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= MAX_SERVER_TIMEOUT:
                raise ConfigurationError(
                    f"{name} = {value}: must be more than 0 and at most "
                    f"{MAX_SERVER_TIMEOUT:g} seconds (e.g. {name} = 10)"
                )


@dataclass(frozen=True, slots=True)
class TsaSection:
    url: str = ""
    """RFC 3161 timestamp authority; empty: XAdES-BES and PAdES B-B only."""


@dataclass(frozen=True, slots=True)
class LimitsSection:
    """Memory and per-peer bounds of the peer endpoint (docs/transport.md, Limits)."""

    peer_bytes_in_flight: int = BODY_BYTES_IN_FLIGHT
    """Bytes of request bodies the peer endpoint holds at once, all peers together; requests
    beyond it wait, then get 503 BUSY. Receiving a body takes ~4 times its size at its peak
    (benchmarks/receive_memory.py): size this to a fifth of the memory the node may use above
    its ~230 MB at rest."""

    peer_rate_per_second: float = PEER_RATE_PER_SECOND
    """Sustained requests per second one peer body may make (a token bucket)."""
    peer_burst: int = PEER_BURST
    """Requests one peer may make at once above that rate (the bucket's capacity)."""
    peer_concurrent_requests: int = PEER_CONCURRENT_REQUESTS
    """Requests one peer body may have in flight at once."""
    max_message_bytes: int = DEFAULT_MAX_DELIVERY_BYTES
    """Largest delivery (signed XML and attachment parts) this node accepts; publish the same
    value in the directory (``<Limits><MaxMessageBytes>``) so that senders refuse at once."""
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    """Largest single attachment this node accepts (uploads and deliveries); published as
    ``<Limits><MaxAttachmentBytes>``."""

    def __post_init__(self) -> None:
        if (
            self.peer_rate_per_second <= 0
            or self.peer_burst < 1
            or (self.peer_concurrent_requests < 1)
        ):
            raise ConfigurationError(
                "peer_rate_per_second must be above 0, peer_burst and peer_concurrent_requests "
                f"at least 1 (defaults {PEER_RATE_PER_SECOND:g}, {PEER_BURST}, "
                f"{PEER_CONCURRENT_REQUESTS}: a body can send over 1,000 requests/s)"
            )
        if self.max_message_bytes < 1 or self.max_attachment_bytes < 1:
            raise ConfigurationError(
                "[limits] max_message_bytes and max_attachment_bytes must be at least 1 "
                f"(default {DEFAULT_MAX_DELIVERY_BYTES}: 2 GiB each)"
            )
        if self.peer_bytes_in_flight < MAX_MESSAGE_BYTES:
            raise ConfigurationError(
                f"peer_bytes_in_flight = {self.peer_bytes_in_flight} is below the largest "
                f"message a peer may send ({MAX_MESSAGE_BYTES} bytes), which could then never "
                f"be received; set at least {MAX_MESSAGE_BYTES}"
            )


@dataclass(frozen=True, slots=True)
class LoggingSection:
    """What ``gateway serve`` logs, and how (gateway.logs; docs/operations.md, Logs)."""

    format: str = "text"
    """``text`` (one readable line) or ``json`` (JSON Lines for a log collector)."""
    level: str = "INFO"
    """Least level written: DEBUG, INFO (with the access log), WARNING, ERROR."""
    levels: dict[str, str] = field(default_factory=dict)
    """Levels of single loggers, e.g. ``"gateway.access" = "WARNING"`` (no access log)."""

    def __post_init__(self) -> None:
        if self.format not in LOG_FORMATS:
            raise ConfigurationError(
                f"format = {self.format!r}: one of {', '.join(map(repr, LOG_FORMATS))}"
            )
        for name, level in {"level": self.level, **self.levels}.items():
            if level not in LOG_LEVELS:
                raise ConfigurationError(
                    f"{name} = {level!r}: one of {', '.join(LOG_LEVELS)} (upper case)"
                )


@dataclass(frozen=True, slots=True)
class CalendarSection:
    """Extra days off and transferred working days, per state, on top of ``holidays``."""

    extra_days_off: dict[str, tuple[date, ...]] = field(default_factory=dict)
    extra_working_days: dict[str, tuple[date, ...]] = field(default_factory=dict)
    """Dates as TOML dates (``2026-12-31``) or strings (``"2026-12-31"``): what
    ``gateway.rules.calendars.calendar_for`` takes."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node: NodeSection
    path: Path
    """The configuration file itself."""
    database: DatabaseSection = DatabaseSection()
    keys: KeysSection = KeysSection()
    trust: TrustSection = TrustSection()
    peer: PeerSection = PeerSection()
    api: ServerSection = ServerSection()
    console: ServerSection = ServerSection()
    tsa: TsaSection = TsaSection()
    limits: LimitsSection = LimitsSection()
    calendar: CalendarSection = field(default_factory=CalendarSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    extra: dict[str, Any] = field(default_factory=dict)
    """Sections owned by later layers (retention, scheduler), validated by them."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def database_url(self) -> str:
        """The URL to connect with: ``[database] url`` with the password from its source
        (file, systemd credential, variable) when there is one. Never log or print it."""
        if not self.database.url:
            return f"sqlite:///{self.node.data_dir / 'gateway.db'}"
        found = credentials.find_secret(
            key="password",
            file=self.database.password_file,
            env=self.database.password_env,
            environ=os.environ,
        )
        if found is None:
            return self.database.url
        return _with_password(self.database.url, found[0].decode("utf-8"))

    @classmethod
    def from_toml(cls, path: str | Path) -> NodeConfig:
        path = Path(path).resolve()
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigurationError(f"{path}: no such configuration file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path) -> NodeConfig:
        known = {f.name: f for f in dataclasses.fields(cls) if f.name not in {"path", "extra"}}
        extra_sections = {"retention", "scheduler", "api_tokens", "users", "originals"}
        kwargs: dict[str, Any] = {"path": path}
        extra: dict[str, Any] = {}
        for name, value in raw.items():
            if name in extra_sections:
                extra[name] = value
                continue
            if name not in known:
                raise ConfigurationError(
                    f"{path}: unknown section [{name}]; known sections: "
                    f"{', '.join(sorted([*known, *extra_sections]))}"
                )
            if not isinstance(value, dict):
                raise ConfigurationError(f"{path}: [{name}] must be a table")
            section_type = _section_type(known[name])
            kwargs[name] = _load_section(section_type, value, f"{path}: [{name}]", path.parent)
        if "node" not in kwargs:
            raise ConfigurationError(f'{path}: missing section [node] with body_id = "RU-FSSP"')
        if not BODY_ID_PATTERN.fullmatch(kwargs["node"].body_id):
            raise ConfigurationError(
                f"{path}: [node] body_id {kwargs['node'].body_id!r} must look like RU-FSSP"
            )
        _check_timezone(kwargs["node"].timezone, path)
        return cls(extra=extra, **kwargs)


def _with_password(url: str, password: str) -> str:
    """``url`` (an RFC 1738 database URL, as SQLAlchemy reads it) with ``password`` set,
    percent-encoded: the configuration stays free of the database library."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{hostport}"))


def _check_timezone(name: str, path: Path) -> None:
    """Refuse an unknown zone when the file is read, not when a schedule or the console first
    needs it (which would be a traceback in the middle of start-up)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"{path}: [node] timezone {name!r} — не имя часового пояса IANA; "
            'укажите, например, "Europe/Moscow" или "Asia/Almaty"'
        ) from None


def _section_type(f: dataclasses.Field[Any]) -> type:
    hint = typing.get_type_hints(NodeConfig)[f.name]
    assert isinstance(hint, type)  # every field of NodeConfig is a section class
    return hint


def _load_section(section_type: type, raw: dict[str, Any], where: str, base: Path) -> Any:
    fields = {f.name: f for f in dataclasses.fields(section_type)}
    hints = typing.get_type_hints(section_type)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigurationError(
                f"{where}: unknown key {key!r}; known keys: {', '.join(fields)}"
            )
        values[key] = _coerce(hints[key], value, f"{where} {key}", base)
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigurationError(f"{where}: missing mandatory key(s): {', '.join(missing)}")
    try:
        return section_type(**values)
    except ConfigurationError as exc:  # a section's own check of its values: say where
        raise ConfigurationError(f"{where}: {exc}") from None


def _date(value: Any, where: str) -> date:
    if type(value) is date:  # a TOML date; a date-time is not a day
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigurationError(f"{where}: {value!r} is not a date; write it as 2026-12-31")


def _coerce(hint: Any, value: Any, where: str, base: Path) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(options[0], value, where, base)
    if hint is Path:
        if not isinstance(value, str):
            raise ConfigurationError(f"{where}: must be a path string")
        p = Path(value)
        return p if p.is_absolute() else (base / p).resolve()
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigurationError(f"{where}: must be a list")
        (item,) = typing.get_args(hint)[:1]
        return tuple(_coerce(item, v, where, base) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigurationError(f"{where}: must be a table")
        _, item = typing.get_args(hint)
        return {k: _coerce(item, v, f"{where}.{k}", base) for k, v in value.items()}
    if hint is date:
        return _date(value, where)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigurationError(f"{where}: must be a number (seconds)")
        return float(value)
    if hint is bool and not isinstance(value, bool):
        raise ConfigurationError(f"{where}: must be true or false")
    if hint is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigurationError(f"{where}: must be a whole number")
    if hint is str and not isinstance(value, str):
        raise ConfigurationError(f"{where}: must be a string")
    return value
