"""Properties of the load-time checks, on random policy lists: what loads is unambiguous and
complete for concrete messages (including parties no policy names)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.app.retention import MessageDirection, MessageFacts, parse_policies
from gateway.model.problems import ConfigurationError
from gateway.model.profiles import PROFILES

STORED = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
AGREEMENTS = sorted(PROFILES)
KINDS = ["Request", "Response", "Receipt"]
PARTIES = ["KZ", "KZ-MJ", "RU-FSSP", "BY"]
# Concrete parties: named ones, unnamed bodies of named states, a state nobody names.
SAMPLE_PARTIES = ["KZ-MJ", "KZ-SC", "RU-FSSP", "RU-VS", "BY-FSSP", "AM-MJ"]


def _toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


@st.composite
def policy_texts(draw: st.DrawFn) -> str:
    count = draw(st.integers(min_value=1, max_value=3))
    blocks = []
    for n in range(count):
        lines = ["[[policy]]", f'name = "p{n}"']
        for key, pool in (
            ("agreement", AGREEMENTS),
            ("kind", KINDS),
            ("direction", ["in", "out"]),
            ("party", PARTIES),
        ):
            chosen = draw(
                st.one_of(
                    st.none(), st.lists(st.sampled_from(pool), min_size=1, max_size=2, unique=True)
                )
            )
            if chosen is not None:
                lines.append(f"{key} = {_toml_list(chosen)}")
        lines += ['counts_from = "received"', f'keep = "{n + 1} years"']
        blocks.append("\n".join(lines))
    if draw(st.integers(0, 4)) > 0:  # mostly end with a catch-all, so that many lists load
        blocks.append('[[policy]]\nname = "all"\ncounts_from = "received"\nkeep = "9 years"')
    return "\n\n".join(blocks) + "\n"


def _messages() -> list[MessageFacts]:
    return [
        MessageFacts(agreement, kind, direction, party, "XX-SELF", STORED)
        if direction == MessageDirection.IN
        else MessageFacts(agreement, kind, direction, "XX-SELF", party, STORED)
        for agreement in AGREEMENTS
        for kind in PROFILES[agreement].kinds
        for direction in MessageDirection
        for party in SAMPLE_PARTIES
    ]


MESSAGES = _messages()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts())
def test_accepted_lists_are_complete_and_unambiguous(text: str) -> None:
    try:
        loaded = parse_policies(text, Path("random.toml"))
    except ConfigurationError as exc:
        assert str(exc).startswith("random.toml:")  # always a file and a line
        event("refused")
        return
    event("accepted")
    decided_by = {id(p): [] for p in loaded.policies}
    for message in MESSAGES:
        chosen = loaded.select(message)
        assert chosen is not None, f"accepted list leaves {message} uncovered"
        decided_by[id(chosen)].append(message)
    for i, later in enumerate(loaded.policies):
        # Not shadowed: every accepted policy decides some message (within the sample, which
        # has a representative of every class the checker distinguishes).
        assert decided_by[id(later)], f"{later.name} decides nothing"
        for earlier in loaded.policies[:i]:
            wanted = [m for m in decided_by[id(earlier)] if later.matches(m)]
            if wanted:
                # A later policy that also wants something the earlier one decides must want
                # all of it: the earlier one is an exception carved out of it.
                assert all(later.matches(m) for m in decided_by[id(earlier)]), (
                    f"{earlier.name} and {later.name} cross"
                )
