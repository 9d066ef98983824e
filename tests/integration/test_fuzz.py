"""Fuzzing a real node, bounded for CI (``benchmarks/fuzz.py`` runs the long campaign): the
receive path with bytes and with mutated signed envelopes, the local API's submissions and the
console's forms.
Every input is answered without an escaping exception or a 5xx, every refusal has a code and
leaves the store as it was. The receive path runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.demo.setup import DemoWorld
from tests.integration.fuzzing import (
    ApiTarget,
    ConsoleTarget,
    ReceiveTarget,
    api_target,
    byte_mutation,
    console_forms,
    console_target,
    mutated_tree,
    receive_target,
    submission_bodies,
)

BOUNDED = settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
"""A fixed sample (derandomized: the same examples every run, so CI never flakes on a new
one); the campaign script explores further."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, world: DemoWorld) -> Iterator[ReceiveTarget]:
    database_url = ""
    if request.param == "postgresql":
        database_url = request.getfixturevalue("pg_schema")("fuzz")
    with receive_target(world, f"fuzz-{request.param}", database_url) as target:
        yield target


@pytest.fixture(scope="module")
def api(world: DemoWorld) -> Iterator[ApiTarget]:
    with api_target(world, "fuzz-api") as target:
        yield target


@pytest.fixture(scope="module")
def console(world: DemoWorld) -> Iterator[ConsoleTarget]:
    with console_target(world, "fuzz-console") as target:
        yield target


def test_arbitrary_bytes_are_refused_with_a_code(target: ReceiveTarget) -> None:
    @BOUNDED
    @given(st.binary(max_size=512))
    def run(payload: bytes) -> None:
        assert target.check(payload) != "200 accepted" or payload

    run()


def test_byte_mutations_of_a_signed_envelope_are_answered(target: ReceiveTarget) -> None:
    valid = target.valid("cis-enforcement.Request")

    @BOUNDED
    @given(byte_mutation(valid))
    def run(payload: bytes) -> None:
        target.check(payload)

    run()


def test_mutated_documents_signed_by_the_sender_are_answered(target: ReceiveTarget) -> None:
    outcomes: list[str] = []

    @BOUNDED
    @given(mutated_tree(target))
    def run(payload: bytes) -> None:
        outcomes.append(target.check(payload))

    run()
    # The mutations got past the signatures to the checks behind them, not all to one code.
    assert len(set(outcomes)) > 2, outcomes


def test_mutated_submissions_to_the_local_api_are_answered(api: ApiTarget) -> None:
    outcomes: list[str] = []

    @BOUNDED
    @given(submission_bodies())
    def run(body: bytes) -> None:
        outcomes.append(api.check(body))

    run()
    assert len(set(outcomes)) > 2, outcomes


def test_hostile_console_forms_are_answered(console: ConsoleTarget) -> None:
    outcomes: list[str] = []

    @BOUNDED
    @given(console_forms())
    def run(form: tuple[str, list[tuple[str, str]]]) -> None:
        outcomes.append(console.check(form))

    run()
    assert len(set(outcomes)) > 1, outcomes
