"""The operator's case acts as the local API and the console take them: closing a proceeding
(:func:`gateway.app.proceedings.close_proceeding`), marking an original sent or received
(:mod:`gateway.app.originals`) and disclosing a document (:func:`gateway.app.disclosures.
disclose`) — the same functions ``gateway proceedings close``, ``gateway originals`` and
``gateway disclose`` call, as the request's actor (``tests/app/test_case_surfaces.py``).

:func:`run_case_act` runs one off the event loop (one store transaction) and turns "the node does
not hold it" into :class:`~gateway.exchange.service.NotFound`, as every other read of a
conversation or message answers (404); every other refusal goes on as raised, naming its rule.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from gateway.exchange.disclosure import DisclosureError, DisclosureRefused
from gateway.exchange.service import NotFound
from gateway.model.problems import Refused

T = TypeVar("T")

UNKNOWN = frozenset({"UNKNOWN_CONVERSATION", "UNKNOWN_MESSAGE"})
"""The refusals' codes that mean the subject is not stored here (the store's rules)."""


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in the default executor: the application layer is synchronous (one
    store transaction, or a purge run), so the API and the console call it off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, partial(fn, *args, **kwargs))


async def run_case_act(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """:func:`in_thread`; an unknown subject is NotFound."""
    try:
        return await in_thread(fn, *args, **kwargs)
    except DisclosureRefused:
        raise
    except Refused as refused:
        if refused.code in UNKNOWN:
            raise NotFound(str(refused)) from None
        raise
    except DisclosureError as exc:  # not stored here, or of other bodies' conversation
        raise NotFound(str(exc)) from None
