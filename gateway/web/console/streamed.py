"""Forms with a file, read as a stream after their CSRF token (``auth.FORM_STREAM``).

Every other form is read whole within ``auth.MAX_FORM_BYTES`` (64 KiB). A form with a file
cannot be: an answer's scan may be gigabytes (streamed into the node, ``action_pages``), the
depositary's directory megabytes. So the session middleware checks the token as the form's
first part, before any other byte is read, and the handler reads the rest here: each text field
within :data:`MAX_FIELD_BYTES`, each file within its own bound.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import BodyPartReader, web

from gateway.web.console.auth import FORM_STREAM

READ_CHUNK = 64 * 1024
"""Bytes read from a streamed form at a time."""

MAX_FIELD_BYTES = 64 * 1024
"""A text field of a streamed form: the longest (10,000 characters, 4 bytes each in UTF-8)
and then some; a longer one is refused (413) before more is read."""

MAX_FORM_FIELDS = 100
"""More parts than any form of ours has (the CIS request has about 60, a checkbox a part)."""


async def field_text(part: BodyPartReader) -> str:
    """A text field's value; over :data:`MAX_FIELD_BYTES`: 413 before more is read."""
    raw = bytearray()
    while chunk := await part.read_chunk(READ_CHUNK):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FIELD_BYTES, actual_size=len(raw))
    return raw.decode("utf-8", errors="replace")


async def file_head(part: BodyPartReader, limit: int) -> bytes:
    """A small file's bytes, at most ``limit + 1`` of them: enough for the act it goes to (the
    directory's import, a certificate's) to refuse it as too large, naming its limit, without
    the console holding more."""
    data = bytearray()
    while len(data) <= limit and (chunk := await part.read_chunk(READ_CHUNK)):
        data += chunk
    return bytes(data[: limit + 1])


async def read_small_form(
    request: web.Request, files: Mapping[str, int]
) -> tuple[dict[str, str], dict[str, bytes]]:
    """The text fields and the files of a form whose files are small enough to hold:
    ``files`` names each file field with its bound in bytes (the act's own limit). A form read
    whole (not multipart, so no file) gives its text fields only."""
    if FORM_STREAM not in request:
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}, {}
    reader = request[FORM_STREAM]
    fields: dict[str, str] = {}
    held: dict[str, bytes] = {}
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or len(fields) + len(held) > MAX_FORM_FIELDS:
            raise web.HTTPBadRequest(text="unexpected form part")
        if part.filename is not None and part.name in files and part.name not in held:
            held[part.name] = await file_head(part, files[part.name])
            if len(held[part.name]) > files[part.name]:
                break  # refused as too large by the act: the rest of the body is not read
        elif part.name and part.filename is None:
            fields[part.name] = await field_text(part)
        else:
            await part.release()  # a file this form does not take
    return fields, held
