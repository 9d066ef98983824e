"""When each of several keys is in force: the schedule of activations that a key's generations
(:mod:`~gateway.crypto.keys.generations`) and the KEK ring (:mod:`~gateway.crypto.keys.kek_ring`)
both keep, and the times they write into their JSON manifests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gateway.crypto.certificates import utc


class Activation(Protocol):
    """One entry of a schedule: from ``at`` on (``None``: from the beginning) its key is active."""

    @property
    def at(self) -> datetime | None: ...


A = TypeVar("A", bound=Activation)


def _order(activation: Activation) -> tuple[int, float]:
    return (0, 0.0) if activation.at is None else (1, activation.at.timestamp())


def in_force(activations: Iterable[A], at: datetime) -> list[A]:
    """The activations made at or before ``at``, oldest first; at equal times, in the order
    they were recorded (the sort is stable)."""
    at = utc(at)
    return sorted((a for a in activations if a.at is None or a.at <= at), key=_order)


def current(activations: Iterable[A], at: datetime) -> A | None:
    """The activation in force at ``at``: the latest, and at equal times the one recorded last."""
    made = in_force(activations, at)
    return made[-1] if made else None


def left_service(
    activations: Iterable[A], at: datetime, mine: Callable[[A], bool]
) -> datetime | None:
    """When the key whose activations ``mine`` picks stopped being active, as seen at ``at``
    (None: it is active, or never was)."""
    active, end = False, None
    for activation in in_force(activations, at):
        if mine(activation):
            active, end = True, None
        elif active:
            active, end = False, activation.at
    return end


def time_text(value: datetime | None) -> str | None:
    """A manifest's time: ISO 8601 in UTC, or null."""
    return None if value is None else utc(value).isoformat()


def parse_time(value: Any, where: str, error: type[Exception]) -> datetime | None:
    """A manifest's time (ISO 8601 with a zone, or null) as UTC; ``error`` naming ``where``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise error(f"{where} must be an ISO 8601 time or null")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise error(f"{where} {value!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise error(f"{where} {value!r} has no time zone")
    return utc(parsed)
