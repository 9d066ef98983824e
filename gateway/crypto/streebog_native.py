"""Streebog through the system libcrypto's GOST provider, when it is installed.

Pure-Python Streebog (gostcrypto) costs ~80-300 ms for a 17 KB envelope; OpenSSL's GOST
provider (Debian ``libengine-gost-openssl``: ``ossl-modules/gostprov.so``) does it in well under
a millisecond. ``cryptography`` links its own OpenSSL without GOST, so the system
``libcrypto.so.3`` is reached through ``ctypes``, in a library context of its own
(``OSSL_LIB_CTX_new``): loading a provider into the default context would switch off the
default provider for everything else in the process that uses the system libcrypto (libpq's
TLS). Without the library or the provider, :func:`digest` answers ``None`` and the caller falls
back to pure Python — same bytes, checked in tests/crypto/test_gost.py.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import dataclass

DISABLE_ENV = "GATEWAY_GOST_NATIVE"
"""Set to ``0`` to force pure Python (tests compare the two)."""


@dataclass(frozen=True, slots=True)
class _Native:
    lib: ctypes.CDLL
    digests: dict[int, int]
    """Key bits → ``EVP_MD*`` of Streebog of that size (fetched once; EVP_MD is shareable)."""


_LOCK = threading.Lock()


@functools.cache
def _load() -> _Native | None:
    try:
        lib = ctypes.CDLL("libcrypto.so.3")
    except OSError:
        return None
    lib.OSSL_LIB_CTX_new.restype = ctypes.c_void_p
    lib.OSSL_PROVIDER_load.restype = ctypes.c_void_p
    lib.OSSL_PROVIDER_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.EVP_MD_fetch.restype = ctypes.c_void_p
    lib.EVP_MD_fetch.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.EVP_Digest.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_uint),
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.EVP_Digest.restype = ctypes.c_int
    context = lib.OSSL_LIB_CTX_new()
    if not context or not lib.OSSL_PROVIDER_load(context, b"gostprov"):
        return None
    digests = {}
    for bits in (256, 512):
        md = lib.EVP_MD_fetch(context, f"md_gost12_{bits}".encode(), None)
        if not md:
            return None
        digests[bits] = md
    return _Native(lib, digests)


def available() -> bool:
    return os.environ.get(DISABLE_ENV, "1") != "0" and _load() is not None


def digest(data: bytes, bits: int) -> bytes | None:
    """Streebog-``bits`` of ``data`` from libcrypto, or ``None`` when it is not there."""
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    with _LOCK:
        native = _load()
    if native is None:
        return None
    out = ctypes.create_string_buffer(64)
    size = ctypes.c_uint()
    if not native.lib.EVP_Digest(
        data, len(data), out, ctypes.byref(size), native.digests[bits], None
    ):
        return None
    return out.raw[: size.value]
