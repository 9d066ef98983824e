"""Loading retention policies: the good file, every broken case with its line, the defaults."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from gateway.app.retention import (
    DEFAULT_POLICIES,
    MessageDirection,
    Period,
    PeriodUnit,
    PolicySet,
    RetentionEvent,
    load_policy_file,
    load_retention,
    parse_policies,
)
from gateway.config import NodeConfig
from gateway.model.problems import ConfigurationError
from gateway.model.profiles import PROFILES
from tests.jobs.policy_texts import GOOD


def _replace_line(text: str, number: int, new: str) -> str:
    lines = text.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


def test_good_file_parses_in_order_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "retention.toml"
    path.write_text(GOOD, encoding="utf-8")
    policies = load_policy_file(path)
    assert [p.name for p in policies.policies] == ["kz-requests", "cis-all", "courts-all"]
    assert [p.line for p in policies.policies] == [2, 11, 17]
    first = policies.policies[0]
    assert first.kinds == {"Request", "AdditionalInfoAnswer"}
    assert first.directions == {MessageDirection.IN}
    assert first.parties == {"KZ"}
    assert first.counts_from is RetentionEvent.PROCEEDING_CLOSED
    assert first.keep == Period(3, PeriodUnit.YEARS)
    assert policies.policies[2].keep == Period(18, PeriodUnit.MONTHS)
    assert policies.source == str(path.resolve())
    assert not policies.is_default


# (edit to GOOD, expected line, fragment of the reason)
BROKEN_EDITS = [
    ("unknown-key", (7, 'partee = "KZ"'), 7, "unknown key 'partee'"),
    ("bad-period-unit", (15, 'keep = "5 yeers"'), 15, "is not a period"),
    ("period-too-long", (15, 'keep = "500 years"'), 15, "at most 100 years"),
    ("period-not-string", (15, "keep = 5"), 15, "is not a period"),
    ("unknown-kind", (5, 'kind = ["Request", "Appeal"]'), 5, "unknown message kind 'Appeal'"),
    ("kind-of-other-agreement", (5, 'kind = "UnsolicitedInformation"'), 5, "unknown message kind"),
    ("unknown-agreement", (13, 'agreement = "cis-enforcment"'), 13, "unknown agreement"),
    ("bad-direction", (6, 'direction = "inbound"'), 6, 'direction must be "in"'),
    ("bad-party", (7, 'party = "Kazakhstan"'), 7, "must be a body id"),
    ("bad-event", (14, 'counts_from = "closed"'), 14, "is not an event"),
    ("duplicate-name", (18, 'name = "cis-all"'), 18, "already used at line 11"),
    ("bad-name", (12, 'name = "CIS All"'), 12, "short code"),
    ("empty-list", (5, "kind = []"), 5, "empty list"),
    ("missing-keep", (21, ""), 17, "without 'keep'"),
    ("unknown-table", (10, "[defaults]"), 10, "unknown key or table 'defaults'"),
]


@pytest.mark.parametrize(
    ("edit", "line", "reason"),
    [pytest.param(e, line, r, id=case) for case, e, line, r in BROKEN_EDITS],
)
def test_broken_policy_is_rejected_with_file_line_and_reason(
    tmp_path: Path, edit: tuple[int, str], line: int, reason: str
) -> None:
    path = tmp_path / "retention.toml"
    path.write_text(_replace_line(GOOD, *edit), encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_policy_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path.resolve()}:{line}: "), message
    assert reason in message


SHADOWED = GOOD.replace(
    '[[policy]]\nname = "courts-all"',
    '[[policy]]\nname = "kz-late"\nagreement = "cis-enforcement"\nkind = "Request"\n'
    'counts_from = "received"\nkeep = "1 year"\n\n[[policy]]\nname = "courts-all"',
)

CROSSING = """\
[[policy]]
name = "from-kz"
agreement = "cis-enforcement"
party = "KZ"
counts_from = "received"
keep = "3 years"

[[policy]]
name = "requests"
agreement = "cis-enforcement"
kind = "Request"
counts_from = "conversation-closed"
keep = "5 years"

[[policy]]
name = "all"
counts_from = "conversation-closed"
keep = "5 years"
"""

# The crossing cases resolved by an exception for exactly the intersection, written first.
CROSSING_RESOLVED = (
    '[[policy]]\nname = "kz-requests"\nagreement = "cis-enforcement"\nkind = "Request"\n'
    'party = "KZ"\ncounts_from = "proceeding-closed"\nkeep = "3 years"\n\n' + CROSSING
)

GAP = GOOD.split('[[policy]]\nname = "courts-all"')[0]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        pytest.param(SHADOWED, 17, "'kz-late' never applies", id="shadowed"),
        pytest.param(CROSSING, 8, "'from-kz' (line 1) and 'requests' both match", id="crossing"),
        pytest.param(GAP, 11, "no policy covers ru-kz-supreme-courts", id="coverage-gap"),
        pytest.param(GOOD.replace('keep = "5 years"', 'keep = "5 years'), 15, "", id="syntax"),
        pytest.param('policy = "x"\n', 1, "[[policy]] tables", id="not-tables"),
        pytest.param("# nothing yet\n", 1, "no [[policy]]", id="empty"),
    ],
)
def test_order_coverage_and_syntax_errors(text: str, line: int, reason: str) -> None:
    source = Path("/etc/gateway/retention.toml")
    with pytest.raises(ConfigurationError) as caught:
        parse_policies(text, source)
    message = str(caught.value)
    assert message.startswith(str(source)), message
    assert re.search(rf"(:{line}: |at line {line}\b)", message), message
    assert reason in message


def test_crossing_policies_are_accepted_once_the_intersection_has_its_own_policy() -> None:
    policies = parse_policies(CROSSING_RESOLVED, Path("retention.toml"))
    assert [p.name for p in policies.policies] == ["kz-requests", "from-kz", "requests", "all"]


def test_crossing_message_names_an_example_case() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_policies(CROSSING, Path("retention.toml"))
    assert "cis-enforcement Request in (from any other body of KZ)" in str(caught.value)


def _node_config(tmp_path: Path, retention: str) -> NodeConfig:
    path = tmp_path / "node.toml"
    path.write_text(
        '[node]\nbody_id = "RU-FSSP"\ntimezone = "Europe/Moscow"\n\n' + retention, encoding="utf-8"
    )
    return NodeConfig.from_toml(path)


def test_node_config_inline_policies(tmp_path: Path) -> None:
    inline = GOOD.replace("[[policy]]", "[[retention.policy]]")
    config = _node_config(tmp_path, inline)
    policies = PolicySet.from_config(config)
    assert [p.name for p in policies.policies] == ["kz-requests", "cis-all", "courts-all"]
    # Lines are those of the node's file (4 lines of [node] precede the policies).
    assert [p.line for p in policies.policies] == [6, 15, 21]


def test_node_config_inline_error_names_the_config_file_and_line(tmp_path: Path) -> None:
    inline = _replace_line(GOOD, 15, 'keep = "five years"').replace(
        "[[policy]]", "[[retention.policy]]"
    )
    config = _node_config(tmp_path, inline)
    with pytest.raises(ConfigurationError, match=rf"^{re.escape(str(config.path))}:19: keep"):
        load_retention(config.extra.get("retention"), config.path)


def test_node_config_names_a_policy_file_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "retention.toml").write_text(GOOD, encoding="utf-8")
    config = _node_config(tmp_path, '[retention]\npolicy_file = "policies/retention.toml"\n')
    policies = load_retention(config.extra.get("retention"), config.path)
    assert policies.source == str((tmp_path / "policies" / "retention.toml").resolve())


@pytest.mark.parametrize(
    ("section", "line", "reason"),
    [
        ('[retention]\npolicy_fil = "r.toml"\n', 6, "unknown key 'policy_fil'"),
        ('[retention]\npolicy_file = "missing.toml"\n', 6, "no such retention policy file"),
        ("[retention]\npolicy_file = 3\n", 6, "policy_file must be a path string"),
        (
            '[retention]\npolicy_file = "r.toml"\n\n[[retention.policy]]\nname = "x"\n',
            6,
            "both policy_file and",
        ),
    ],
)
def test_broken_retention_section(
    tmp_path: Path, section: str, line: int | None, reason: str
) -> None:
    config = _node_config(tmp_path, section)
    with pytest.raises(ConfigurationError) as caught:
        load_retention(config.extra.get("retention"), config.path)
    message = str(caught.value)
    if line is not None:
        assert message.startswith(f"{config.path}:{line}: "), message
    assert reason in message


def test_no_retention_section_uses_the_defaults_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _node_config(tmp_path, "")
    with caplog.at_level(logging.WARNING, logger="gateway.app.retention"):
        policies = load_retention(config.extra.get("retention"), config.path)
    assert policies is DEFAULT_POLICIES and policies.is_default
    assert "CIS Art. 9.6" in caplog.text


def test_defaults_pass_the_same_checks_as_a_file() -> None:
    """The defaults written as a file load cleanly: no gaps, no shadowing, no crossing."""
    text = ""
    for p in DEFAULT_POLICIES.policies:
        (agreement,) = p.agreements
        (direction,) = p.directions
        text += (
            f'[[policy]]\nname = "{p.name}"\nagreement = "{agreement}"\n'
            f'direction = "{direction.value}"\ncounts_from = "{p.counts_from.value}"\n'
            f'keep = "{p.keep}"\n\n'
        )
    loaded = parse_policies(text, Path("defaults.toml"))
    assert [(p.name, p.keep, p.counts_from) for p in loaded.policies] == [
        (p.name, p.keep, p.counts_from) for p in DEFAULT_POLICIES.policies
    ]
    assert all(p.keep == Period(5, PeriodUnit.YEARS) for p in DEFAULT_POLICIES.policies)
    assert all("ст. 9.6 Соглашения СНГ" in p.basis for p in DEFAULT_POLICIES.policies)
    assert {a for p in DEFAULT_POLICIES.policies for a in p.agreements} == set(PROFILES)


def test_documented_example_parses() -> None:
    """The example in docs/retention-and-jobs.md is meant to be pasted: it must load."""
    doc = (Path(__file__).parents[2] / "docs" / "retention-and-jobs.md").read_text("utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", doc, flags=re.S)
    policy_blocks = [b for b in blocks if b.lstrip().startswith("# retention.toml")]
    assert policy_blocks, "docs/retention-and-jobs.md lost its retention.toml example"
    loaded = parse_policies(policy_blocks[0], Path("retention.toml"))
    assert {p.counts_from for p in loaded.policies} == set(RetentionEvent)


# --- the floor (issue finding: keep = "0 days" was accepted silently) ---


def _one(keep: str, extra: str = "") -> str:
    return f'[[policy]]\nname = "all"\ncounts_from = "received"\nkeep = "{keep}"\n{extra}'


@pytest.mark.parametrize("keep", ["0 days", "30 days", "364 days", "11 months"])
def test_a_period_below_the_minimum_is_refused_naming_the_line_and_what_to_do(keep: str) -> None:
    source = Path("/etc/gateway/retention.toml")
    with pytest.raises(ConfigurationError) as caught:
        parse_policies(_one(keep), source)
    message = str(caught.value)
    assert message.startswith(f"{source}:4: "), message
    assert "shorter than the minimum of 1 year" in message
    assert "CIS Art. 9.6" in message and "below_minimum_reason" in message


@pytest.mark.parametrize("keep", ["1 year", "12 months", "365 days", "5 years"])
def test_the_minimum_itself_and_longer_periods_pass(keep: str) -> None:
    assert parse_policies(_one(keep), Path("retention.toml")).policies[0].keep


def test_a_shorter_period_with_a_stated_reason_is_kept_with_the_policy() -> None:
    reason = "Закон стороны: черновики уничтожаются через 30 дней"
    policy = parse_policies(
        _one("30 days", f'below_minimum_reason = "{reason}"\n'), Path("retention.toml")
    ).policies[0]
    assert policy.below_minimum_reason == reason
    with pytest.raises(ConfigurationError, match="non-empty sentence"):
        parse_policies(_one("30 days", 'below_minimum_reason = " "\n'), Path("retention.toml"))


def test_a_node_sets_its_own_minimum(tmp_path: Path) -> None:
    from gateway.app.retention import load_retention

    config = tmp_path / "node.toml"
    config.write_text('[node]\nbody_id = "RU-FSSP"\n', encoding="utf-8")
    policies = [{"name": "all", "counts_from": "received", "keep": "6 months"}]
    lowered = load_retention({"minimum_keep": "90 days", "policy": policies}, config)
    assert str(lowered.policies[0].keep) == "6 months"
    with pytest.raises(ConfigurationError, match="minimum of 1 year"):
        load_retention({"policy": policies}, config)
