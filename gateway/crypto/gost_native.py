"""GOST through the system libcrypto, when Debian's ``libengine-gost-openssl`` is installed.

Pure Python (gostcrypto) costs tens of milliseconds per signature, ~70 ms per verification and
~80 ms per Streebog of a 17 KB envelope; OpenSSL's GOST code does each in well under a
millisecond. ``cryptography`` links an OpenSSL of its own without GOST, so the system
``libcrypto.so.3`` is reached through ``ctypes``:

* Streebog through the GOST *provider* (``ossl-modules/gostprov.so``) in a library context of
  its own (``OSSL_LIB_CTX_new``): loading a provider into the default context would switch off
  the default provider for everything else in the process that uses the system libcrypto;
* signatures through the GOST *engine* (``engines-3/gost.so``; the provider of this version
  has no GOST signatures): registered for its own algorithms only (key ASN.1, key methods,
  digests of the GOST NIDs), which nothing else in the process uses.

Without the library, the engine or the provider, every function answers ``None`` and
:mod:`gateway.crypto.gost` computes the same bytes in pure Python (tests compare the two).
``GATEWAY_GOST_NATIVE=0`` forces pure Python.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from ctypes import POINTER, byref, c_char_p, c_int, c_long, c_size_t, c_uint, c_void_p
from dataclasses import dataclass
from typing import Any

DISABLE_ENV = "GATEWAY_GOST_NATIVE"
"""Set to ``0`` to use pure Python (tests compare the two paths)."""

KEY_CACHE_SIZE = 256
"""Parsed keys kept (by their DER): a node verifies the same few peer keys all day."""


@dataclass(frozen=True, slots=True)
class _Native:
    lib: ctypes.CDLL
    streebog: dict[int, int]
    """Key bits → ``EVP_MD*`` of Streebog from the provider (for digests)."""
    signing_digests: dict[int, int]
    """Key bits → ``EVP_MD*`` of Streebog from the engine (for signatures)."""


@dataclass(frozen=True, slots=True)
class _Signing:
    """What one signature or its check uses (:func:`_signing_context`)."""

    lib: ctypes.CDLL
    ctx: int
    """``EVP_MD_CTX*``."""
    pkey: int
    """``EVP_PKEY*``."""
    md: int
    """``EVP_MD*`` of the key's Streebog."""


def _bind(lib: ctypes.CDLL, name: str, result: Any, *args: Any) -> None:
    function = getattr(lib, name)
    function.restype = result
    function.argtypes = list(args)


@functools.cache
def _load() -> _Native | None:
    try:
        lib = ctypes.CDLL("libcrypto.so.3")
    except OSError:
        return None
    for name, result, args in (
        ("OSSL_LIB_CTX_new", c_void_p, ()),
        ("OSSL_PROVIDER_load", c_void_p, (c_void_p, c_char_p)),
        ("EVP_MD_fetch", c_void_p, (c_void_p, c_char_p, c_char_p)),
        ("EVP_Digest", c_int, (c_char_p, c_size_t, c_char_p, POINTER(c_uint), c_void_p, c_void_p)),
        ("ENGINE_by_id", c_void_p, (c_char_p,)),
        ("ENGINE_init", c_int, (c_void_p,)),
        ("ENGINE_register_pkey_asn1_meths", c_int, (c_void_p,)),
        ("ENGINE_register_pkey_meths", c_int, (c_void_p,)),
        ("ENGINE_register_digests", c_int, (c_void_p,)),
        ("ERR_clear_error", None, ()),
        ("EVP_get_digestbyname", c_void_p, (c_char_p,)),
        ("d2i_PUBKEY", c_void_p, (c_void_p, POINTER(c_char_p), c_long)),
        ("d2i_AutoPrivateKey", c_void_p, (c_void_p, POINTER(c_char_p), c_long)),
        ("EVP_PKEY_free", None, (c_void_p,)),
        ("EVP_PKEY_up_ref", c_int, (c_void_p,)),
        ("EVP_MD_CTX_new", c_void_p, ()),
        ("EVP_MD_CTX_free", None, (c_void_p,)),
        ("EVP_DigestSignInit", c_int, (c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)),
        ("EVP_DigestSign", c_int, (c_void_p, c_char_p, POINTER(c_size_t), c_char_p, c_size_t)),
        ("EVP_DigestVerifyInit", c_int, (c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)),
        ("EVP_DigestVerify", c_int, (c_void_p, c_char_p, c_size_t, c_char_p, c_size_t)),
    ):
        try:
            _bind(lib, name, result, *args)
        except AttributeError:
            return None
    context = lib.OSSL_LIB_CTX_new()
    if not context or not lib.OSSL_PROVIDER_load(context, b"gostprov"):
        lib.ERR_clear_error()
        return None
    streebog = {
        bits: lib.EVP_MD_fetch(context, f"md_gost12_{bits}".encode(), None) for bits in (256, 512)
    }
    engine = lib.ENGINE_by_id(b"gost")
    if not engine or not lib.ENGINE_init(engine):
        lib.ERR_clear_error()
        return None
    registered = (
        lib.ENGINE_register_pkey_asn1_meths(engine)
        and lib.ENGINE_register_pkey_meths(engine)
        and lib.ENGINE_register_digests(engine)
    )
    signing = {bits: lib.EVP_get_digestbyname(f"md_gost12_{bits}".encode()) for bits in (256, 512)}
    if not registered or not all(streebog.values()) or not all(signing.values()):
        lib.ERR_clear_error()
        return None
    return _Native(lib, streebog, signing)


_LOCK = threading.Lock()
_KEYS: dict[bytes, int] = {}
"""DER (SPKI or PKCS#8) → ``EVP_PKEY*``, freed when the cache is emptied."""


def _native() -> _Native | None:
    if os.environ.get(DISABLE_ENV, "1") == "0":
        return None
    with _LOCK:
        return _load()


def available() -> bool:
    return _native() is not None


def _key(native: _Native, der: bytes, private: bool) -> int | None:
    """The parsed key of ``der``, with a reference of the caller's own (free it after use:
    another thread may empty the cache meanwhile)."""
    with _LOCK:
        pkey = _KEYS.get(der)
        if pkey is None:
            buffer = c_char_p(der)
            parse = native.lib.d2i_AutoPrivateKey if private else native.lib.d2i_PUBKEY
            pkey = parse(None, byref(buffer), len(der))
            if not pkey:
                native.lib.ERR_clear_error()
                return None
            if len(_KEYS) >= KEY_CACHE_SIZE:
                for old in _KEYS.values():
                    native.lib.EVP_PKEY_free(old)
                _KEYS.clear()
            _KEYS[der] = pkey
        native.lib.EVP_PKEY_up_ref(pkey)
        return pkey


def digest(data: bytes, bits: int) -> bytes | None:
    """Streebog-``bits`` of ``data``, or ``None`` when libcrypto cannot."""
    native = _native()
    if native is None:
        return None
    out = ctypes.create_string_buffer(64)
    size = c_uint()
    if not native.lib.EVP_Digest(data, len(data), out, byref(size), native.streebog[bits], None):
        native.lib.ERR_clear_error()
        return None
    return out.raw[: size.value]


@contextmanager
def _signing_context(der: bytes, bits: int, *, private: bool) -> Iterator[_Signing | None]:
    """The key ``der`` (PKCS#8 if ``private``, else SubjectPublicKeyInfo) and a fresh digest
    context for Streebog-``bits``, freed (and libcrypto's error queue cleared) on the way out;
    ``None`` when libcrypto cannot."""
    native = _native()
    pkey = None if native is None else _key(native, der, private=private)
    if native is None or pkey is None:
        yield None
        return
    lib = native.lib
    ctx = lib.EVP_MD_CTX_new()
    try:
        yield _Signing(lib, ctx, pkey, native.signing_digests[bits])
    finally:
        lib.EVP_MD_CTX_free(ctx)
        lib.EVP_PKEY_free(pkey)
        lib.ERR_clear_error()


def sign(pkcs8: bytes, bits: int, data: bytes) -> bytes | None:
    """``s || r`` over Streebog-``bits`` of ``data`` with the PKCS#8 key, or ``None``."""
    with _signing_context(pkcs8, bits, private=True) as c:
        if c is None:
            return None
        size = c_size_t(0)
        if c.lib.EVP_DigestSignInit(c.ctx, None, c.md, None, c.pkey) != 1:
            return None
        if c.lib.EVP_DigestSign(c.ctx, None, byref(size), data, len(data)) != 1:
            return None
        out = ctypes.create_string_buffer(size.value)
        if c.lib.EVP_DigestSign(c.ctx, out, byref(size), data, len(data)) != 1:
            return None
        return out.raw[: size.value]


def verify(spki: bytes, bits: int, signature: bytes, data: bytes) -> bool | None:
    """Whether ``signature`` (``s || r``) signs ``data``; ``None`` when libcrypto cannot say."""
    with _signing_context(spki, bits, private=False) as c:
        if c is None:
            return None
        if c.lib.EVP_DigestVerifyInit(c.ctx, None, c.md, None, c.pkey) != 1:
            return None
        return bool(c.lib.EVP_DigestVerify(c.ctx, signature, len(signature), data, len(data)) == 1)
