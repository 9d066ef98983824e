"""The operator and administrator console: Russian, server-rendered, working without JavaScript.

Public API::

    make_console_app(service, users, *, sessions, secure_cookies, audit, ...) -> web.Application
    start_console(app, host, port, ssl_context) -> web.AppRunner
    UserDirectory (protocol), StoreUserDirectory(store)
    SessionStore(store)                          (sessions shared by every console process)
    hash_password(password) -> str
    node_console_sources(node, executor) -> dict   (every source, keywords for make_console_app)
    NodeIdentity.of(body_id, body_name, iana_zone)  (whose console, and its zone)
    store_audit(store, executor, clock) -> audit callback over the node's audit trail
"""

from gateway.app.passwords import hash_password
from gateway.app.sessions import SessionStore
from gateway.app.user_directory import StoreUserDirectory, UserDirectory
from gateway.web.console.app import make_console_app, start_console
from gateway.web.console.identity import NodeIdentity, node_identity
from gateway.web.console.sources import (
    AuditQuery,
    AuditTrail,
    ExpiringKey,
    UndeliveredItem,
    node_console_sources,
    store_audit,
)

__all__ = [
    "AuditQuery",
    "AuditTrail",
    "ExpiringKey",
    "NodeIdentity",
    "SessionStore",
    "StoreUserDirectory",
    "UndeliveredItem",
    "UserDirectory",
    "hash_password",
    "make_console_app",
    "node_console_sources",
    "node_identity",
    "start_console",
    "store_audit",
]
