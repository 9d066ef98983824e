"""The operator and administrator console: Russian, server-rendered, working without JavaScript.

Public API::

    make_console_app(service, users, *, secure_cookies, audit, ...) -> web.Application
    UserDirectory (protocol), StoreUserDirectory(store)
    hash_password(password) -> str
"""

from gateway.web.console.app import make_console_app, start_console
from gateway.web.console.context import ExpiringKey, UndeliveredItem
from gateway.web.console.passwords import hash_password
from gateway.web.console.users import StoreUserDirectory, UserDirectory

__all__ = [
    "ExpiringKey",
    "StoreUserDirectory",
    "UndeliveredItem",
    "UserDirectory",
    "hash_password",
    "make_console_app",
    "start_console",
]
