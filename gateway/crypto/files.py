"""Writing key material and key manifests to disk: whole or not at all, owner-only."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_atomically(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` (mode 0600) so that readers see the old file or the new one,
    never a mix: a temporary file beside it, flushed to disk, then renamed into place (or, with
    ``overwrite=False``, linked, which refuses a file that appeared meanwhile:
    ``FileExistsError``), and the folder flushed so the rename survives a crash."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def parse_json(
    path: Path, raw: bytes, *, limit: int, what: str, remedy: str, error: type[Exception]
) -> Any:
    """The JSON document ``raw`` read from ``path``; ``error`` (naming the file and ``remedy``)
    if it is larger than ``limit`` bytes or not JSON."""
    if len(raw) > limit:
        raise error(f"{path}: {len(raw)} bytes is too large for {what}")
    try:
        return json.loads(raw)
    except ValueError:
        raise error(f"{path}: not JSON; {remedy}") from None


def check_format(
    doc: Any, where: str, *, format: str, version: int, error: type[Exception]
) -> dict[str, Any]:
    """``doc`` as a JSON object of this ``format`` and ``version``, else ``error`` naming the
    field."""
    if not isinstance(doc, dict) or doc.get("format") != format:
        raise error(f"{where}: 'format' must be {format!r}")
    if doc.get("version") != version:
        raise error(
            f"{where}: version {doc.get('version')!r} is not supported "
            f"(this gateway reads version {version})"
        )
    return doc


def write_json_atomically(path: Path, doc: Any) -> None:
    """:func:`write_atomically` of ``doc`` as indented UTF-8 JSON."""
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    write_atomically(path, text.encode("utf-8"))


@contextlib.contextmanager
def locked(directory: Path, name: str) -> Iterator[None]:
    """An exclusive advisory lock on ``directory/.<name>.lock`` for a read-modify-write."""
    lock_path = Path(directory) / f".{name}.lock"
    fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
