"""A running node: the peer endpoint (mutual TLS), the local API and the delivery worker.

``gateway serve`` and ``gateway demo`` build a :class:`NodeRuntime` per node and ``await
start()`` / ``await stop()`` it. The node's CPU work runs in thread pools sized to the cores;
the event loop only moves bytes. Peer intake, the local side (API and console) and the node's
own work (delivery, directory and key checks) each have a pool of their own, so that a case
system saturating the API with large submissions cannot make peers wait (docs/transport.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from gateway.app.context import OutboxClaim, serving_context, storage_fault
from gateway.app.tls import (
    ReloadableContext,
    client_context,
    local_server_context,
    server_context,
)
from gateway.config import ServerSection
from gateway.crashpoints import crash_point
from gateway.crypto.keys.generations import expiring_keys, tls_identity
from gateway.crypto.segments import RECORD_BYTES, SegmentOpener, sealed_size
from gateway.exchange.attachments import (
    AttachmentMeta,
    HeldClaim,
    StagedPart,
    discard,
    held_offset,
    keep_held,
    open_reader,
    read_sealed_stream,
    read_stream,
    stage_held,
    stage_stream,
)
from gateway.exchange.directory import UnknownBody
from gateway.exchange.local_service import LocalNodeService
from gateway.exchange.node import Node
from gateway.exchange.receiving import XML, Disposition, ReceiveOutcome, part_openers
from gateway.exchange.refusals import AT_ENDPOINT
from gateway.exchange.sending import (
    DELIVERY_LEASE,
    Answer,
    DeliveryResult,
    Outgoing,
    SignerRevoked,
)
from gateway.model.directory import CertificateRole
from gateway.web.limits import PeerLimits, TokenBucket
from gateway.web.local_api import make_local_api_app, start_local_api
from gateway.web.metrics import (
    DeliveryOutcome,
    GatewayMetrics,
    LateSide,
    RejectionSource,
    ScheduledKey,
)
from gateway.web.peer_client import PartPayload, PeerClient, PeerTransportError, messages_url
from gateway.web.peer_server import RunningPeerServer, make_peer_app, run_peer_server
from gateway.web.server import ServerSettings

log = logging.getLogger(__name__)

DELIVERY_POLL_SECONDS = 0.5
"""How often an idle delivery worker looks for due rows; a submission wakes it at once."""

OUTGOING_FAILED = "OUTGOING_FAILED"
"""Outbox error code when a claimed row cannot even be sent (no endpoint, no document)."""

SCHEDULER_SHUTDOWN_GRACE = 30.0
"""Seconds a running job (a purge batch) gets to finish when the node stops."""

DELIVERIES_IN_FLIGHT = 32
"""Deliveries a worker keeps going at once: enough to fill the kept-alive connections to the
peers (CLIENT_CONNECTIONS_PER_PEER each) while their answers are verified and recorded."""

SchedulerFactory = Callable[..., Any]
"""What runs the node's jobs: called with the node's configuration, the node and
``on_outcome``; returns a scheduler (``start()``, ``shutdown(grace)``, ``engine``) or None when
``[scheduler] enabled = false``. ``gateway.jobs.scheduler.scheduler_for``, wired by the command
that serves (the servers do not import the scheduler)."""

DIRECTORY_POLL_SECONDS = 5.0
"""How soon a node notices a newly imported directory file."""

LISTEN_BACKLOG = 1024
"""Connections the kernel queues before a worker accepts them: a burst of peers reconnecting."""

EXECUTOR_THREADS = max(2, (os.cpu_count() or 2) * 2)
"""Threads for signing, verifying, validation and the database, per pool of peer intake and of
the node's own work: the crypto and libxml2 release the GIL, and database waits are I/O; twice
the cores keeps both busy without thrashing."""

GIL_SWITCH_INTERVAL = 0.001
"""Seconds a thread may hold the GIL while others wait (CPython's default: 0.005). A peer's
document passes hundreds of points where its thread gives the GIL up (libxml2, OpenSSL, the
database) and must wait to take it back; with the API's threads converting large submissions
in Python, each wait costs up to the interval. Measured on 2 cores with the API's pool full of
seconds-long submissions: a peer's receipt took ~3 s at 5 ms, ~1.1 s at 1 ms (0.4 s idle)."""

API_EXECUTOR_THREADS = max(2, os.cpu_count() or 2)
"""Threads for the local API's and the console's work: submissions (JSON to XML, schema,
signing) and reads. At most this many submissions are processed at once; more wait in line
for this pool only, never in front of a peer's document."""


@dataclass(frozen=True, slots=True)
class Listeners:
    """Sockets bound and listening before the worker processes were forked (``gateway serve
    --workers N``): each worker serves the same ports; the kernel gives each connection to one.
    The console too: its sessions are in the store, so any worker serves any signed-in user."""

    peer: socket.socket
    api: socket.socket
    console: socket.socket


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (read it back from the socket)."""
    return socket.create_server((host, port), backlog=LISTEN_BACKLOG, reuse_port=reuse_port)


@dataclass
class NodeRuntime:
    node: Node
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="node")
    )
    """The node's own work: delivery, directory and key checks."""
    peer_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(EXECUTOR_THREADS, thread_name_prefix="peer")
    )
    """Peer intake: the receive pipeline of every document a peer POSTs."""
    api_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(API_EXECUTOR_THREADS, thread_name_prefix="api")
    )
    """The local side: the API's and the console's submissions and reads."""
    worker_id: str = field(default_factory=lambda: f"w-{uuid.uuid4().hex[:12]}")
    peer_server: RunningPeerServer | None = None
    api_runner: web.AppRunner | None = None
    client: PeerClient | None = None
    server_tls: ReloadableContext | None = None
    client_tls: ReloadableContext | None = None
    service: LocalNodeService | None = None
    extra_runners: list[web.AppRunner] = field(default_factory=list)
    _worker: asyncio.Task[None] | None = None
    directory_poll_seconds: float = DIRECTORY_POLL_SECONDS
    scheduler: Any = None
    """The nightly purge, deadline reminders and key-expiry warnings (``gateway serve``)."""
    _tls_generation: int = 0
    _crl_mtimes: tuple[float, ...] = ()
    _expiry_checked_at: Any = None
    _jobs_checked_at: Any = None
    _watcher: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _lifecycle: web.Application | None = None
    """The application whose ``cleanup_ctx`` holds the running stages (:meth:`start`)."""
    _listeners: Listeners | None = None
    _delivering: bool = True
    _released: bool = False

    @property
    def peer_port(self) -> int:
        """The peer endpoint's bound port (the configured one, or the one port 0 got)."""
        assert self.peer_server is not None
        return self.peer_server.port

    @property
    def api_port(self) -> int:
        """The local API's bound port, read from its socket after :meth:`start`."""
        assert self.api_runner is not None
        return _bound_port(self.api_runner)

    @property
    def console_port(self) -> int | None:
        """The console's bound port; ``None`` when it is not served."""
        return _bound_port(self.extra_runners[0]) if self.extra_runners else None

    # --- start / stop --------------------------------------------------------------------

    async def start(
        self,
        *,
        deliver: bool = True,
        console: bool = True,
        scheduler: SchedulerFactory | None = None,
        listeners: Listeners | None = None,
    ) -> None:
        """Serve the peer endpoint, the local API and (``console``) the console on their
        configured ports — port 0 binds a free one; read it back from :attr:`peer_port`,
        :attr:`api_port`, :attr:`console_port`. ``scheduler`` runs the node's jobs
        (``gateway.jobs.scheduler.scheduler_for``, given by ``gateway serve``); none by default.

        Each part is a stage of an aiohttp application's ``cleanup_ctx`` (:meth:`_stages`),
        entered in order at its startup: if one fails (a port in use, a bad scheduler setting),
        the stages already entered are left in reverse order — servers closed, the scheduler
        and the tasks stopped, the pools shut down, the store disposed — before the error
        propagates; :meth:`stop` leaves them the same way."""
        lifecycle = web.Application()
        lifecycle.cleanup_ctx.extend(
            self._stages(deliver=deliver, console=console, scheduler=scheduler, listeners=listeners)
        )
        lifecycle.freeze()
        self._lifecycle = lifecycle
        try:
            await lifecycle.startup()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "node %s: peer endpoint %s, local API %s:%s",
            self.node.body_id,
            self.peer_server.url if self.peer_server else "-",
            self.node.config.api.host,
            self.api_port,
        )

    def _stages(
        self,
        *,
        deliver: bool,
        console: bool,
        scheduler: SchedulerFactory | None,
        listeners: Listeners | None,
    ) -> list[Callable[[web.Application], AsyncIterator[None]]]:
        """The runtime's parts, outermost first: each sets one part up, yields while the node
        runs, and releases it."""
        stages = [self._own_stage, self._peer_stage, self._api_stage]
        if console or listeners is not None:
            stages.append(self._console_stage)
        if scheduler is not None:
            stages.append(functools.partial(self._scheduler_stage, scheduler))
        stages.append(self._task_stage)
        self._listeners, self._delivering = listeners, deliver
        return stages

    async def _own_stage(self, _: web.Application) -> AsyncIterator[None]:
        """What the runtime was given: its thread pools and the node (keys, store)."""
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)  # process-wide: one node per process
        try:
            yield
        finally:
            self._release_own()

    def _release_own(self) -> None:
        if self._released:
            return
        self._released = True
        for pool in (self.api_executor, self.peer_executor, self.executor):
            pool.shutdown(wait=True)
        self.node.close()

    async def _peer_stage(self, _: web.Application) -> AsyncIterator[None]:
        """The peer endpoint (mutual TLS) and the client that delivers to peers."""
        config = self.node.config
        listeners = self._listeners
        self.server_tls = ReloadableContext(self._tls_context(server_context))
        self.client_tls = ReloadableContext(self._tls_context(client_context))
        limits = PeerLimits(
            rate=TokenBucket(config.limits.peer_rate_per_second, config.limits.peer_burst),
            max_concurrent_per_peer=config.limits.peer_concurrent_requests,
            bytes_in_flight=config.limits.peer_bytes_in_flight,
            max_delivery_bytes=config.limits.max_message_bytes,
            max_attachment_bytes=config.limits.max_attachment_bytes,
        )
        app = make_peer_app(
            self._identify_peer,
            self._pipeline,
            limits,
            audit_refusal=self._audit_refusal,
            parts=_NodeParts(self),
        )
        self.peer_server = await run_peer_server(
            app,
            self.server_tls,
            config.peer.host,
            config.peer.port,
            sock=listeners.peer if listeners else None,
            reuse_port=config.peer.reuse_port,
        )
        try:
            self.client = PeerClient(self.client_tls)
            try:
                yield
            finally:
                await self.client.close()
        finally:
            await self.peer_server.stop()

    async def _api_stage(self, _: web.Application) -> AsyncIterator[None]:
        config = self.node.config
        listeners = self._listeners
        self.service = LocalNodeService(self.node, self.api_executor)
        self.metrics.directory_in_force(lambda: self.node.directory.version)
        self.metrics.key_schedule(self._scheduled_keys)
        api = make_local_api_app(
            _WakingService(self.service, self._wake),
            self.metrics,
            serving_context(
                self.node.store, config, self.node.clock, self.node.keys, self.node.kek_ring
            ),
            max_attachment_bytes=config.limits.max_attachment_bytes,
        )
        self.api_runner = await start_local_api(
            api,
            config.api.host,
            config.api.port,
            sock=listeners.api if listeners else None,
            settings=server_settings(config.api),
            ssl_context=self._local_tls(config.api),
        )
        try:
            yield
        finally:
            await self.api_runner.cleanup()

    async def _console_stage(self, _: web.Application) -> AsyncIterator[None]:
        listeners = self._listeners
        try:
            await self._start_console(listeners.console if listeners else None)
            yield
        finally:
            for runner in self.extra_runners:
                await runner.cleanup()

    async def _scheduler_stage(
        self, scheduler_for: SchedulerFactory, _: web.Application
    ) -> AsyncIterator[None]:
        """The nightly purge, reminders and key-expiry warnings (gateway.jobs)."""
        self.scheduler = scheduler_for(
            self.node.config,
            self.node,
            on_outcome=lambda o: self.metrics.job_outcome(o.job, o.outcome.value),
        )
        if self.scheduler is None:
            yield
            return
        await self.scheduler.start()
        try:
            yield
        finally:
            await self.scheduler.shutdown(SCHEDULER_SHUTDOWN_GRACE)

    async def _task_stage(self, _: web.Application) -> AsyncIterator[None]:
        """The delivery worker and the directory watcher."""
        if self._delivering:
            self._worker = asyncio.create_task(self._deliver_forever(), name="delivery")
        # Taken now, not when the task first runs: a file replaced in between must count.
        path = self.node.config.trust.directory_file
        self._watcher = asyncio.create_task(
            self._watch_directory(_mtime(path) if path else 0.0), name="directory-watch"
        )
        try:
            yield
        finally:
            for task in (self._watcher, self._worker):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def stop(self) -> None:
        """Leave every stage entered, innermost first (once; a second call does nothing)."""
        self._stopping = True
        lifecycle, self._lifecycle = self._lifecycle, None
        if lifecycle is not None:
            await lifecycle.cleanup()
        self._release_own()  # also when it never started: the node was handed to it

    def _local_tls(self, section: ServerSection) -> ssl.SSLContext | None:
        """HTTPS for ``[api]``/``[console]`` when ``tls_cert_file`` is set (else plain HTTP,
        for loopback)."""
        if section.tls_cert_file is None or section.tls_key_file is None:
            return None
        keys = self.node.keys
        return local_server_context(
            section.tls_cert_file,
            section.tls_key_file,
            # Asked only for an encrypted key; a node on a PKCS#11 token may have no passphrase.
            password=keys.passphrase,
        )

    async def _start_console(self, sock: socket.socket | None = None) -> None:
        """The operators' console on ``[console]`` (local side only, never the peer endpoint):
        HTTPS with ``Secure`` cookies when ``[console] tls_cert_file`` is set, else plain HTTP
        for loopback (or behind a TLS-terminating proxy)."""
        from gateway.web.console import (
            SessionStore,
            StoreUserDirectory,
            make_console_app,
            node_console_sources,
            node_identity,
            start_console,
            store_audit,
        )

        node = self.node
        assert self.service is not None
        app = make_console_app(
            _WakingService(self.service, self._wake),  # type: ignore[arg-type]
            StoreUserDirectory(node.store),
            sessions=SessionStore(node.store),
            secure_cookies=node.config.console.tls,
            audit=store_audit(node.store, self.api_executor, node.clock),
            identity=node_identity(node),
            clock=node.clock,
            calendars=lambda: node.calendars,
            config_hint=str(node.config.path),
            **node_console_sources(node, self.api_executor),
        )
        config = node.config.console
        self.extra_runners.append(
            await start_console(
                app,
                config.host,
                config.port,
                self._local_tls(config),
                sock,
                settings=server_settings(config),
            )
        )

    def _tls_context(self, factory: Any) -> Any:
        keys = self.node.keys
        identity = tls_identity(keys, self.node.clock())
        self._tls_generation = identity.generation
        return factory(
            identity.cert_file,
            identity.key_file,
            self._tls_anchors(),
            password=keys.passphrase(),
            crl_files=tuple(self.node.config.trust.crl_files),
        )

    def _tls_anchors(self) -> str:
        """The CAs of the directory's bodies: who may connect, and whom we connect to."""
        from cryptography import x509

        pems = []
        for body in self.node.directory.bodies:
            for cert in body.certificates:
                if cert.role is CertificateRole.OFFICIALS_CA:
                    pems.append(
                        x509.load_der_x509_certificate(cert.der).public_bytes(
                            serialization.Encoding.PEM
                        )
                    )
        return b"".join(sorted(set(pems))).decode("ascii")

    async def _watch_directory(self, seen: float) -> None:
        """Take a new directory version without restart: ``gateway directory import`` replaces
        the file atomically; here it is noticed, verified (depositary signature, no rollback)
        and swapped in — trust anchors, pinned certificates, endpoints and TLS alike."""
        path = self.node.config.trust.directory_file
        self._crl_mtimes = self._crl_state()
        while not self._stopping:
            await asyncio.sleep(self.directory_poll_seconds)
            await self._follow_keys()
            await self._write_refusal_summaries()
            current = _mtime(path) if path is not None else seen
            if current == seen:
                continue
            seen = current
            loop = asyncio.get_running_loop()
            try:
                directory = await loop.run_in_executor(self.executor, self._load_newer_directory)
            except Exception as exc:  # a bad file must not stop the node: it keeps the old one
                log.error("new directory file refused: %s", exc)
                continue
            await self.reload_directory(directory)
            log.info("directory version %s in force", directory.version)

    async def _write_refusal_summaries(self) -> None:
        """The minutes just over get their refusal summaries even when no refusal follows."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self.node.refusals.flush)
        except Exception as exc:  # the store is down: counted still, written next time
            log.error("refusal summaries not written: %s", type(exc).__name__)

    def _crl_state(self) -> tuple[float, ...]:
        return tuple(_mtime(p) for p in self.node.config.trust.crl_files)

    async def _follow_keys(self) -> None:
        """A TLS key generation activated (``gateway keys activate tls``) is served to new
        handshakes without restart; a CRL file replaced (a revocation) is taken at once."""
        loop = asyncio.get_running_loop()
        try:
            identity = await loop.run_in_executor(
                self.executor, tls_identity, self.node.keys, self.node.clock()
            )
        except Exception as exc:  # a revoked or broken TLS key: keep serving the old one, loudly
            log.error("TLS key generation cannot be used: %s", type(exc).__name__)
            identity = None
        await self._publish_key_expiry()
        await self._publish_job_status()
        crls = self._crl_state()
        if identity is not None and identity.generation != self._tls_generation:
            await self.reload_tls()
            log.info("TLS key generation %s in use", identity.generation)
        if crls != self._crl_mtimes:
            self._crl_mtimes = crls
            await loop.run_in_executor(self.executor, self.node.reload_crls)
            await self.reload_tls()
            log.info("certificate revocation lists reloaded")

    async def _publish_job_status(self) -> None:
        """Job gauges from the node-wide slot record (whichever process ran the job), at most
        once a minute."""
        if self.scheduler is None:
            return
        now = self.node.clock()
        if self._jobs_checked_at and (now - self._jobs_checked_at).total_seconds() < 60:
            return
        self._jobs_checked_at = now
        from gateway.app import slots
        from gateway.app.scheduled import JOB_NAMES

        def read() -> list[Any]:
            with self.scheduler.engine.connect() as conn:
                return slots.status(conn, JOB_NAMES)

        try:
            statuses = await asyncio.get_running_loop().run_in_executor(self.executor, read)
        except Exception as exc:  # metrics must never stop the node
            log.error("job status for metrics failed: %s", type(exc).__name__)
            return
        self.metrics.job_status(statuses)

    def _scheduled_keys(self) -> list[ScheduledKey]:
        """Each key generation's planned activation and revocation, for ``/metrics``."""
        return [
            ScheduledKey(e.role, e.generation, e.activation_at, e.revoked_at)
            for e in self.node.keys.entries(self.node.clock())
            if e.role != "kek"
        ]

    async def _publish_key_expiry(self) -> None:
        loop = asyncio.get_running_loop()
        now = self.node.clock()
        if self._expiry_checked_at and (now - self._expiry_checked_at).total_seconds() < 60:
            return
        self._expiry_checked_at = now
        try:
            found = await loop.run_in_executor(self.executor, expiring_keys, self.node.keys, now)
        except Exception as exc:  # metrics must never stop the node
            log.error("key expiry check failed: %s", type(exc).__name__)
            return
        by_role: dict[str, list[int]] = {}
        for key in found:
            by_role.setdefault(str(key.role), []).append(key.days_left)
        self.metrics.keys_expiring(by_role)

    async def reload_tls(self) -> None:
        assert self.server_tls is not None and self.client_tls is not None
        self.server_tls.swap(self._tls_context(server_context))
        self.client_tls.swap(self._tls_context(client_context))
        if self.client is not None:
            await self.client.drop_connections()

    def _load_newer_directory(self) -> Any:
        from gateway.exchange.directory import check_update
        from gateway.exchange.node import load_directory

        now = self.node.clock()
        directory = load_directory(self.node.config, at=now)
        check_update(self.node.directory, directory, now=now)
        return directory

    async def reload_directory(self, directory: Any) -> None:
        """Take a new verified directory: trust, pinned certificates and TLS anchors, live."""
        self.node.update_directory(directory)
        await self.reload_tls()

    # --- peer endpoint ----------------------------------------------------------------------

    def _identify_peer(self, cert_der: bytes) -> str | None:
        try:
            body = self.node.index.body_by_tls_certificate(cert_der)
        except UnknownBody:
            return None
        return body.id

    async def _audit_refusal(self, actor: str, code: str) -> None:
        """A 403 or 413 of the peer endpoint, audited like the pipeline's refusals."""
        record = functools.partial(
            self.node.refusals.record, actor, str(code), self.node.clock(), kind=AT_ENDPOINT
        )
        await asyncio.get_running_loop().run_in_executor(self.peer_executor, record)

    async def _pipeline(
        self, sender: str, payload: bytes, parts: Sequence[StagedPart] = ()
    ) -> tuple[int, bytes, str]:
        loop = asyncio.get_running_loop()
        receive = functools.partial(self.node.receive, sender, payload, parts)
        outcome = await loop.run_in_executor(self.peer_executor, receive)
        if outcome.disposition is Disposition.ACCEPTED:
            crash_point("receipt.answering")
            self.metrics.message_received(outcome.agreement, outcome.kind)
            if outcome.late:
                self.metrics.answer_late(outcome.agreement, LateSide.RECEIVED)
        elif outcome.code:
            self.metrics.message_rejected(outcome.code, RejectionSource.RECEIVED)
        return http_status(outcome), outcome.body, outcome.content_type

    # --- delivery ----------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        """A continuous pipeline: as soon as one delivery ends, the next due row is claimed;
        no round waits for its slowest member. An idle worker sleeps until a submission wakes
        it or the poll interval passes (rows due later, other processes' rows)."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                room = DELIVERIES_IN_FLIGHT - len(in_flight)
                claims = await self._claim(room) if room > 0 else []
                for claim in claims:
                    task = asyncio.create_task(self._deliver_logged(claim))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if claims and len(in_flight) < DELIVERIES_IN_FLIGHT:
                    continue  # more may be due: claim again before waiting
                self._wake.clear()
                waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
                waits |= in_flight
                await asyncio.wait(
                    waits, timeout=DELIVERY_POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waits - in_flight:
                    waiter.cancel()
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _claim(self, limit: int) -> list[OutboxClaim]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.executor, self.node.claim_due, self.worker_id, limit
            )
        except Exception as exc:  # a database hiccup must not stop delivery for good
            fault = storage_fault(exc)
            if fault is None:
                log.exception("claiming due deliveries failed")
            else:  # not a bug: one line, the worker claims again at its next poll
                log.error("claiming due deliveries failed: the store is %s; retrying", fault)
            return []

    async def _deliver_logged(self, claim: OutboxClaim) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + DELIVERY_LEASE.total_seconds() / 2
        while True:
            try:
                await self._deliver(claim)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not stop delivery for good; logged with type
                fault = storage_fault(exc)
                if fault is None:
                    log.exception("delivery of one row failed")
                    return
                if loop.time() + STORE_FAULT_RETRY_SECONDS > give_up:
                    # The row stays claimed until its lease ends, then goes out again (the
                    # peer answers a resend with the same receipt): nothing is lost.
                    log.error("delivery of one row failed: the store is %s; retried later", fault)
                    return
            # The database restarting or the disk full: the row is still ours for most of its
            # lease, so try it again soon rather than wait for the lease to end.
            log.warning(
                "delivery of one row failed: the store is %s; trying again in %s s",
                fault,
                STORE_FAULT_RETRY_SECONDS,
            )
            await asyncio.sleep(STORE_FAULT_RETRY_SECONDS)

    async def _part_bytes(
        self, attachment_id: str, size: int, sealed: bool, start: int = 0
    ) -> AsyncIterator[bytes]:
        """One attachment's bytes for a delivery from byte ``start``, decrypted from the store
        as they are sent; ``sealed`` (a confidential document's): its stored segments as they
        are, from the record ``start`` begins."""
        if sealed:
            if start >= sealed_size(size):  # held whole by the peer: nothing to send again
                return
            async for piece in read_sealed_stream(
                self.node.store, attachment_id, size, self.executor, start // RECORD_BYTES
            ):
                yield piece
            return
        opened = await asyncio.get_running_loop().run_in_executor(
            self.executor, open_reader, self.node.store, attachment_id, self.node.kek_ring
        )
        async for piece in read_stream(self.node.store, opened, self.executor, start):
            yield piece

    async def _parts(self, claim: OutboxClaim, outgoing: Outgoing) -> list[PartPayload]:
        """The delivery's parts. Each declares its whole length (a plain one its SHA-256 too,
        a sealed one is named by its sealing), so that the peer holds what came if the
        delivery breaks off; a retry asks the peer how much it holds and sends each part from
        there (docs/attachments.md, "Resumable deliveries")."""
        assert self.client is not None
        sealed = outgoing.sealed_parts
        # As sent: a sealed part is its records (each segment and its tag), counted so.
        lengths = [sealed_size(p.size) if sealed else p.size for p in outgoing.attachments]
        names: list[bytes | str] = [
            p.attachment_id if sealed else p.sha256 for p in outgoing.attachments
        ]
        offsets = [0] * len(outgoing.attachments)
        if claim.attempt > 1:  # the first attempt has nothing to go on from: no round trip
            asked = await asyncio.gather(
                *(
                    self.client.held_offset(outgoing.endpoint, name, length)
                    for name, length in zip(names, lengths, strict=True)
                )
            )
            # A sealed part goes on from a whole record only (or is held whole).
            offsets = [
                o if not sealed or o % RECORD_BYTES == 0 or o == length else 0
                for o, length in zip(asked, lengths, strict=True)
            ]
            if held := sum(offsets):
                log.info(
                    "delivery of %s to %s goes on: %s bytes of its files are held by the peer",
                    claim.message_id,
                    claim.destination,
                    held,
                    extra={"message_id": claim.message_id, "peer": claim.destination},
                )
                self.metrics.delivery_resumed(claim.destination, held)
        return [
            PartPayload(
                self._part_bytes(p.attachment_id, p.size, sealed, offset),
                length - offset,
                whole=(length, None if sealed else p.sha256),
                offset=offset,
            )
            for p, length, offset in zip(outgoing.attachments, lengths, offsets, strict=True)
        ]

    async def deliver_once(self) -> int:
        """Claim due outbox rows and deliver them concurrently; the number handled (tests)."""
        claims = await self._claim(DELIVERIES_IN_FLIGHT)
        await asyncio.gather(*(self._deliver(c) for c in claims))
        return len(claims)

    async def _deliver(self, claim: OutboxClaim) -> None:
        loop = asyncio.get_running_loop()
        assert self.client is not None
        started = time.perf_counter()
        try:
            outgoing = await loop.run_in_executor(self.executor, self.node.outgoing, claim)
        except Exception as exc:
            # The destination left the directory, the message is gone, its signer was revoked
            # with no successor yet…: record the failed attempt (back-off, then dead letter)
            # instead of leaving the row claimed, which would retry it every lease for ever.
            log.error(
                "delivery of %s cannot start: %s",
                claim.message_id,
                exc if isinstance(exc, SignerRevoked) else type(exc).__name__,
                extra={"message_id": claim.message_id, "peer": claim.destination},
            )
            code = SignerRevoked.code if isinstance(exc, SignerRevoked) else OUTGOING_FAILED
            failure = functools.partial(self.node.record_failure, claim, code, retryable=True)
            await loop.run_in_executor(self.executor, failure)
            self.metrics.delivery(DeliveryOutcome.RETRY)
            return
        if outgoing.resigned:
            self.metrics.message_resigned()
        crash_point("deliver.posting")
        try:
            response = await self.client.post_message(
                messages_url(outgoing.endpoint), outgoing.wire, await self._parts(claim, outgoing)
            )
            status, body = response.status, response.body
        except PeerTransportError as error:
            if error.response is not None and error.status in (409, 422):
                status, body = error.status, error.response.body
            else:
                failure = functools.partial(
                    self.node.record_failure,
                    claim,
                    str(error.code),
                    retryable=error.retryable,
                    transport_status=error.status,
                    retry_after=error.retry_after,
                    busy=error.status == HTTP_TOO_MANY_REQUESTS,
                )
                await loop.run_in_executor(self.executor, failure)
                self.metrics.delivery(DeliveryOutcome.RETRY)
                return
        crash_point("deliver.answered")
        record = functools.partial(
            self.node.record_answer,
            claim,
            outgoing.signed,
            body,
            answer_claimed(status),
            transport_status=status,
        )
        result = await loop.run_in_executor(self.executor, record)
        outcome = {
            DeliveryResult.DELIVERED: DeliveryOutcome.DELIVERED,
            DeliveryResult.REJECTED: DeliveryOutcome.REJECTED,
        }.get(result.outcome, DeliveryOutcome.RETRY)
        self.metrics.delivery(outcome)
        log.info(
            "delivery of %s to %s: %s",
            claim.message_id,
            claim.destination,
            result.outcome.value,
            extra={"message_id": claim.message_id, "peer": claim.destination},
        )
        if result.outcome is DeliveryResult.REJECTED:
            self.metrics.message_rejected(result.code or "REJECTED", RejectionSource.BY_PEER)
        if result.outcome is DeliveryResult.DELIVERED:
            self.metrics.hop_latency(time.perf_counter() - started, peer=claim.destination)


HTTP_TOO_MANY_REQUESTS = 429

STORE_FAULT_RETRY_SECONDS = 2.0
"""A delivery stopped by the store (PostgreSQL restarting: seconds) is tried again this soon."""

_STATUS_OF_DISPOSITION = {
    Disposition.ACCEPTED: 200,
    Disposition.REPLAYED: 200,
    Disposition.REFUSED: 422,
    Disposition.CONFLICT: 409,
    Disposition.UNREADABLE: 400,
    Disposition.TRY_AGAIN: 503,
}
"""The peer protocol's HTTP statuses (docs/protocol.md): a signed Rejection is 422 (invalid) or
409 (does not fit the conversation); 503 asks the sender to retry."""


def http_status(outcome: ReceiveOutcome) -> int:
    """The HTTP status that carries a receive outcome to the peer."""
    status = _STATUS_OF_DISPOSITION[outcome.disposition]
    if status in (409, 422) and outcome.content_type != XML:
        return 400  # nobody could be addressed a signed Rejection: a plain code
    return status


def answer_claimed(status: int) -> Answer:
    """What a peer's answer must be, by the status it came with: 200 a Receipt, else a
    Rejection (409/422; other statuses never reach the recording)."""
    return Answer.RECEIPT if status == 200 else Answer.REJECTION


def server_settings(section: ServerSection) -> ServerSettings:
    """A listener's connection limits from its configuration section; unset keys keep
    gateway.web.server's defaults."""
    given = {
        name: value
        for name in ("header_timeout", "keepalive_timeout")
        if (value := getattr(section, name)) is not None
    }
    return ServerSettings(**given)


def _bound_port(runner: web.AppRunner) -> int:
    """The port the runner's (first) site listens on: the real one even when 0 was asked."""
    return int(runner.addresses[0][1])


def _mtime(path: Any) -> float:
    try:
        return float(path.stat().st_mtime_ns)
    except FileNotFoundError:
        return 0.0


class _NodeParts:
    """The peer endpoint's :class:`PartSink`: parts staged in this node's store, then the
    receive pipeline with them."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime

    async def openers(self, payload: bytes) -> Sequence[SegmentOpener | None]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.runtime.peer_executor, part_openers, self.runtime.node, payload
        )

    async def stage(
        self,
        chunks: AsyncIterator[bytes],
        limit: int,
        *,
        sealed: bool = False,
        opener: SegmentOpener | None = None,
    ) -> StagedPart:
        node = self.runtime.node
        # A part's name and type are the signed header's: the store's copy is a placeholder
        # until the part is linked (the message keeps the signed list).
        return await stage_stream(
            node.store,
            node.kek_ring,
            RECEIVED_PART,
            chunks,
            limit=limit,
            now=node.clock(),
            executor=self.runtime.peer_executor,
            sealed=sealed,
            opener=opener,
        )

    async def discard(self, attachment_ids: list[str]) -> None:
        await discard(self.runtime.node.store, attachment_ids, self.runtime.peer_executor)

    async def held(self, claim: HeldClaim) -> int | None:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self.runtime.peer_executor, held_offset, self.runtime.node.store, claim
        )

    async def stage_held(
        self,
        claim: HeldClaim,
        offset: int,
        chunks: AsyncIterator[bytes],
        on_staged: Callable[[str], None],
        opener: SegmentOpener | None = None,
    ) -> StagedPart:
        node = self.runtime.node
        return await stage_held(
            node.store,
            node.kek_ring,
            RECEIVED_PART,
            claim,
            offset,
            chunks,
            now=node.clock(),
            on_staged=on_staged,
            executor=self.runtime.peer_executor,
            opener=opener,
        )

    async def keep(self, peer: str, attachment_ids: list[str], most_bytes: int) -> None:
        node = self.runtime.node
        await keep_held(
            node.store,
            peer,
            attachment_ids,
            most_bytes,
            now=node.clock(),
            executor=self.runtime.peer_executor,
        )

    async def receive(
        self, sender: str, payload: bytes, parts: Sequence[StagedPart]
    ) -> tuple[int, bytes, str]:
        return await self.runtime._pipeline(sender, payload, parts)


RECEIVED_PART = AttachmentMeta("part", "application/octet-stream")


class _WakingService:
    """The local service, waking the delivery worker after each submission."""

    def __init__(self, inner: LocalNodeService, wake: asyncio.Event) -> None:
        self._inner = inner
        self._wake = wake

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def submit(
        self, document: dict[str, Any], *, actor: Any, idempotency_key: str | None = None
    ) -> Any:
        result = await self._inner.submit(document, actor=actor, idempotency_key=idempotency_key)
        if not result.replayed:  # a replay queued nothing
            self._wake.set()
        return result
