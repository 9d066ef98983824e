"""TLS contexts for the links between nodes (mutual TLS), and their reload without restart.

Both sides use the same policy:

* TLS 1.2 at least; 1.3 offered first and chosen whenever both ends speak it.
* For TLS 1.2 only ECDHE key exchange with AEAD ciphers (forward secrecy, no CBC, no RSA key
  transport); TLS 1.3 suites are all AEAD.
* Trust anchors are ours only (the directory of bodies' CAs), never the system store: a CA that
  some browser trusts has no say over which body may talk to us.
* The server requires a client certificate; the client checks the server's name against the
  peer's endpoint host from the directory (IP or DNS name in the certificate's SAN).
* Strict X.509 checks; no renegotiation; no TLS 1.3 session tickets, so every connection proves
  its certificate against the trust anchors in force when it was opened.

Reload: :class:`ReloadableContext` is an :class:`ssl.SSLContext` whose ``wrap_bio`` (what asyncio
calls once per new connection) delegates to the context in force at that moment. Swapping it
gives new handshakes the new certificate, key and trust anchors; connections already open keep
the ``SSLObject`` they were made with and are not dropped. A new context is built completely (and
fails loudly) before it is swapped in, so a bad key file never replaces a good one.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.model.problems import ConfigurationError

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
"""TLS 1.0/1.1 are deprecated (RFC 8996); 1.2 stays for peers whose stacks lack 1.3."""

TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
    )
)
"""TLS 1.2 suites: ECDHE (forward secrecy) with an AEAD cipher only. OpenSSL's TLS 1.3 suites are
set apart (all AEAD) and are not affected by this list."""

Password = bytes | str | Callable[[], bytes | str] | None
"""Passphrase of an encrypted PKCS#8 key file, or a callable returning it (read at load time)."""


def _policy(ctx: ssl.SSLContext) -> None:
    """The protocol and cipher policy every listener and client of the node has."""
    ctx.minimum_version = MINIMUM_VERSION
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


def _harden(ctx: ssl.SSLContext) -> None:
    """The peer link's: the policy, no session tickets, strict certificates both ways."""
    _policy(ctx)
    ctx.options |= ssl.OP_NO_TICKET
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT


def _load_identity(
    ctx: ssl.SSLContext, cert_file: Path, key_file: Path, password: Password, *, setting: str = ""
) -> None:
    """Load our certificate and key. ``setting``: the configuration naming the files (none: the
    peer link's key in the node's key folder); a :class:`ConfigurationError` names it."""
    name, fix_missing = (
        (setting, "fix the path")
        if setting
        else ("TLS key role 'tls'", "generate the node's keys or fix [keys] dir")
    )
    try:
        ctx.load_cert_chain(cert_file, key_file, password=password)
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"{name}: file {exc.filename or cert_file} not found; {fix_missing}"
        ) from None
    except ssl.SSLError as exc:
        raise ConfigurationError(
            f"{name}: cannot load certificate {cert_file} with key {key_file} "
            f"({exc.reason or exc}): check that the key matches the certificate and, if it is "
            "encrypted, that it uses the node's key passphrase"
        ) from None


def _load_trust(
    ctx: ssl.SSLContext, trust_anchors: str | bytes, crl_files: tuple[Path, ...]
) -> None:
    if not trust_anchors:
        raise ConfigurationError(
            "TLS trust anchors are empty: load the directory of bodies (or [trust] ca_file) "
            "before starting the peer link"
        )
    try:
        ctx.load_verify_locations(cadata=trust_anchors)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigurationError(
            f"TLS trust anchors are not valid PEM/DER certificates ({exc})"
        ) from None
    for crl in crl_files:
        try:
            ctx.load_verify_locations(cafile=crl)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"CRL file {crl} cannot be loaded ({exc})") from None
    if crl_files:
        # Fail closed: with CRLs configured, a peer whose issuer has no CRL here is refused.
        ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF


def server_context(
    cert_file: Path,
    key_file: Path,
    trust_anchors: str | bytes,
    *,
    password: Password = None,
    crl_files: tuple[Path, ...] = (),
) -> ssl.SSLContext:
    """The peer endpoint's context: our TLS certificate, client certificates required.

    ``trust_anchors`` is PEM text (or concatenated DER) of the CAs of the directory of bodies.
    Raises :class:`ConfigurationError` naming the file when something cannot be loaded.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _harden(ctx)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # No TLS 1.3 tickets: a resumed session would skip the check against reloaded anchors.
    ctx.num_tickets = 0
    _load_identity(ctx, cert_file, key_file, password)
    _load_trust(ctx, trust_anchors, crl_files)
    return ctx


def local_server_context(
    cert_file: Path, key_file: Path, *, password: Password = None
) -> ssl.SSLContext:
    """HTTPS for the local API and the console (``[api]``/``[console]`` ``tls_cert_file``):
    the same protocol and cipher policy as the peer link, but no client certificate (browsers
    and case systems sign in with a password or a token)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _policy(ctx)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_identity(ctx, cert_file, key_file, password, setting="tls_cert_file/tls_key_file")
    return ctx


def client_context(
    cert_file: Path,
    key_file: Path,
    trust_anchors: str | bytes,
    *,
    password: Password = None,
    crl_files: tuple[Path, ...] = (),
) -> ssl.SSLContext:
    """The context for our connections to peers: our TLS certificate as client certificate,
    the peer's certificate checked against our anchors and the endpoint's host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    _harden(ctx)
    ctx.check_hostname = True
    _load_identity(ctx, cert_file, key_file, password)
    _load_trust(ctx, trust_anchors, crl_files)
    return ctx


def _require_verification(ctx: ssl.SSLContext) -> None:
    """Refuse a context that would let an unauthenticated peer in: the reload path must not be a
    way around the policy above."""
    if ctx.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError("peer links need a context that requires the peer's certificate")
    if ctx.protocol == ssl.PROTOCOL_TLS_CLIENT and not ctx.check_hostname:
        raise ValueError("the client context must check the peer's host name")
    if ctx.minimum_version < MINIMUM_VERSION:
        raise ValueError(
            f"the context allows {ctx.minimum_version.name}; {MINIMUM_VERSION.name} is the minimum"
        )


class ReloadableContext(ssl.SSLContext):
    """An ``SSLContext`` to hand to aiohttp (server site or client connector) once, whose TLS
    settings can be replaced later with :meth:`swap`.

    Every new connection is wrapped by the context in force at that moment (asyncio calls
    :meth:`wrap_bio` once per connection); open connections keep theirs. The wrapper's own
    settings are never used for a handshake: it is left without certificate or anchors, so
    anything that bypassed the delegation would fail closed.
    """

    def __new__(cls, current: ssl.SSLContext) -> ReloadableContext:
        self = super().__new__(cls, current.protocol)
        return self

    def __init__(self, current: ssl.SSLContext) -> None:
        _require_verification(current)
        _harden(self)
        self._current = current
        self._wrapped = 0

    @property
    def current(self) -> ssl.SSLContext:
        """The context new connections get now."""
        return self._current

    @property
    def connections_wrapped(self) -> int:
        """How many connections (TLS handshakes begun) this context has wrapped so far."""
        return self._wrapped

    def swap(self, new: ssl.SSLContext) -> None:
        """Serve ``new`` to every connection opened from now on."""
        if new.protocol != self.protocol:
            raise ValueError(
                "a server-side context can only be replaced by a server-side one "
                "(and a client-side one by a client-side one)"
            )
        _require_verification(new)
        self._current = new

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        """What asyncio calls for each new connection: wrapped by the context in force now."""
        self._wrapped += 1
        return self._current.wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
            session=session,
        )

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        """Blocking sockets (tools, not the event loop): same delegation as :meth:`wrap_bio`."""
        self._wrapped += 1
        return self._current.wrap_socket(sock, *args, **kwargs)
