"""A run raises the cyclic collector's first threshold while it goes and puts it back after,
also when it fails (gateway.app.purge.PURGE_GC_THRESHOLD says why)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from gateway.app.purge import PURGE_GC_THRESHOLD
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store
from tests.app.purge.world import T0, bulk_messages, purge_received_after_a_year


@pytest.fixture
def default_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


@pytest.mark.usefixtures("default_thresholds")
def test_the_threshold_is_raised_during_the_run_and_restored_after(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    bulk_messages(store, ring, 6, T0)
    seen: list[tuple[int, int, int]] = []

    report = purge_received_after_a_year(
        store,
        seal,
        batch_size=2,
        on_batch=lambda _purged: seen.append(gc.get_threshold()),
    )

    assert report.purged == 6
    assert seen and set(seen) == {(PURGE_GC_THRESHOLD, 10, 10)}
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.usefixtures("default_thresholds")
def test_the_threshold_is_restored_when_the_run_fails(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    bulk_messages(store, ring, 4, T0)

    def fail(_purged: int) -> None:
        raise RuntimeError("the caller's callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        purge_received_after_a_year(
            store,
            seal,
            batch_size=2,
            on_batch=fail,
        )
    assert gc.get_threshold() == (700, 10, 10)
