"""The manifest of key generations: the schedule, revocations, and refusal of broken files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.crypto.keys.generations import (
    GenerationStatus,
    KeyGenerations,
    RevocationReason,
    RotationError,
    read_generations,
    split_generation_stem,
    update_generations,
)

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def two_generations() -> KeyGenerations:
    manifest, number = KeyGenerations.original("seal").with_new_generation(T0)
    assert number == 2
    return manifest.with_activation(2, T0 + HOUR, now=T0)


def test_schedule_switches_at_the_chosen_time() -> None:
    m = two_generations()
    assert m.active_at(T0 + HOUR - timedelta(seconds=1)) == 1
    assert m.active_at(T0 + HOUR) == 2
    assert m.status(2, T0) is GenerationStatus.PENDING
    assert m.status(1, T0 + 2 * HOUR) is GenerationStatus.SUPERSEDED
    assert m.superseded_at(1, T0 + 2 * HOUR) == T0 + HOUR
    assert m.superseded_at(1, T0) is None  # still active then


def test_a_new_plan_replaces_the_future_not_the_past() -> None:
    m = two_generations()
    later = m.with_activation(1, T0 + 3 * HOUR, now=T0 + 2 * HOUR)  # switch back
    assert later.active_at(T0 + 2 * HOUR) == 2
    assert later.active_at(T0 + 3 * HOUR) == 1
    moved = m.with_activation(2, T0 + 5 * HOUR, now=T0 + 10 * timedelta(minutes=1))
    assert moved.active_at(T0 + 2 * HOUR) == 1  # the 11:00 switch was replaced by 15:00
    assert moved.active_at(T0 + 5 * HOUR) == 2
    with pytest.raises(RotationError, match="in the past"):
        m.with_activation(2, T0 - HOUR, now=T0)


def test_revoked_generation_is_never_activated_again() -> None:
    m = two_generations().with_revocation(2, T0 + 2 * HOUR, RevocationReason.KEY_COMPROMISE)
    assert m.status(2, T0 + 90 * timedelta(minutes=1)) is GenerationStatus.ACTIVE
    assert m.status(2, T0 + 2 * HOUR) is GenerationStatus.REVOKED
    with pytest.raises(RotationError, match="revoked"):
        m.with_activation(2, T0 + 3 * HOUR, now=T0 + 2 * HOUR)
    with pytest.raises(RotationError, match="already revoked"):
        m.with_revocation(2, T0 + 3 * HOUR, RevocationReason.SUPERSEDED)


def test_round_trip_through_the_file(tmp_path: Path) -> None:
    assert read_generations(tmp_path, "seal") == KeyGenerations.original("seal")
    update_generations(tmp_path, "seal", lambda _: two_generations())
    assert read_generations(tmp_path, "seal") == two_generations()
    assert (tmp_path / "seal.generations.json").stat().st_mode & 0o077 == 0
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=2), "version"),
        (lambda d: d.update(extra=1), "unknown field"),
        (lambda d: d.update(stem="../seal"), "stem"),
        (lambda d: d["generations"].append(d["generations"][0]), "once"),
        (lambda d: d["generations"][1].update(reason="lost"), "RFC 5280"),
        (lambda d: d["generations"][1].update(created_at="2026-11-23T10:00:00"), "time zone"),
        (lambda d: d["activations"].append({"generation": 7, "at": None}), "not among"),
        (lambda d: d["activations"].append({"generation": True, "at": None}), "integer"),
        (lambda d: d.update(generations="x"), "list"),
    ],
)
def test_broken_manifests_are_refused(tmp_path: Path, change, message: str) -> None:
    doc = two_generations().to_json()
    change(doc)
    (tmp_path / "seal.generations.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(RotationError, match=message):
        read_generations(tmp_path, "seal")


def test_manifest_of_another_key_is_refused(tmp_path: Path) -> None:
    doc = KeyGenerations.original("tls").to_json()
    (tmp_path / "seal.generations.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(RotationError, match="expected 'seal'"):
        read_generations(tmp_path, "seal")


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("seal", ("seal", 1)),
        ("seal.2", ("seal", 2)),
        ("official-ivanov.12", ("official-ivanov", 12)),
        ("seal.02", ("seal.02", 1)),
        ("seal.1", ("seal.1", 1)),
    ],
)
def test_generation_stems(stem: str, expected: tuple[str, int]) -> None:
    assert split_generation_stem(stem) == expected


def test_revoking_a_scheduled_generation_cancels_its_switch() -> None:
    m = two_generations().with_revocation(
        2, T0 + 10 * timedelta(minutes=1), RevocationReason.KEY_COMPROMISE
    )
    assert m.active_at(T0 + 2 * HOUR) == 1  # generation 1 stays in force
    assert m.status(2, T0 + 2 * HOUR) is GenerationStatus.REVOKED
