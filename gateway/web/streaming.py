"""An answer streamed from a synchronous iterator of text lines (an audit export): the lines
are drawn in the thread pool a page at a time, so neither the event loop waits on the store nor
the whole answer sits in memory. Shared by the local API and the console."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

from aiohttp import hdrs, web

LINES_PER_WRITE = 500
"""Lines drawn from the iterator in one trip to the thread pool (an audit event is ~400 bytes)."""


async def stream_lines(
    request: web.Request, lines: Iterator[str], filename: str
) -> web.StreamResponse:
    """Answer ``lines`` (no line ends) as JSON Lines to download as ``filename``. The first page
    is drawn before the answer starts, so a refusal (the role check) is still an error answer."""
    loop = asyncio.get_running_loop()

    def page() -> list[str]:
        return list(itertools.islice(lines, LINES_PER_WRITE))

    chunk = await loop.run_in_executor(None, page)
    response = web.StreamResponse(
        headers={
            hdrs.CONTENT_TYPE: "application/jsonl; charset=utf-8",
            hdrs.CONTENT_DISPOSITION: f'attachment; filename="{filename}"',
        }
    )
    await response.prepare(request)
    while chunk:
        await response.write(("\n".join(chunk) + "\n").encode("utf-8"))
        chunk = await loop.run_in_executor(None, page)
    await response.write_eof()
    return response
