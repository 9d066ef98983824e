"""The one double of the node's seam keeps up with the seam: every method of
gateway.exchange.service.LocalService is defined on the double with the protocol's signature
(a method added to or changed in the protocol fails here, before a web test calls it)."""

from __future__ import annotations

import inspect

import pytest

from gateway.exchange.service import LocalService
from tests.doubles.local_service import LocalServiceDouble

SEAM = sorted(
    name
    for name, member in vars(LocalService).items()
    if inspect.iscoroutinefunction(member) and not name.startswith("_")
)


def test_the_seam_has_methods() -> None:
    assert {"submit", "message", "originals"} <= set(SEAM)
    # The case acts are use cases of gateway.app, called by every surface (issue #16).
    assert not {"disclose", "close_proceeding", "original_sent", "original_received"} & set(SEAM)


@pytest.mark.parametrize("name", SEAM)
def test_the_double_defines_each_method_with_the_protocols_signature(name: str) -> None:
    assert name in vars(LocalServiceDouble), f"the double lacks LocalService.{name}"
    ours = inspect.signature(getattr(LocalServiceDouble, name))
    theirs = inspect.signature(getattr(LocalService, name))
    assert ours == theirs, f"{name}: {ours} differs from the protocol's {theirs}"
