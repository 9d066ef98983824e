"""Retention policies: how long a message is kept before the nightly purge destroys it.

CIS Art. 9.6: information received under the agreement is kept only for the periods the law of
the requesting party sets, then destroyed. The periods are the node operator's to set (they
come from national law, not from the agreement), so policies are data: a list in the node's
``[retention]`` section or in a separate policy file it names (``docs/retention-and-jobs.md``).

Theory of operation
-------------------
A *policy* matches messages by agreement, kind, direction (``in``: received by this node,
``out``: sent by it) and party (the other side: the sender of a received message, the
recipient of a sent one; a body id ``KZ-MJ`` or a state ``KZ``). A key left out matches
anything. It counts a period (``5 years``, ``18 months``, ``90 days``) from an event:

* ``received``            — when this node stored the message (``stored_at``);
* ``conversation-closed`` — when the conversation reached a closed state;
* ``proceeding-closed``   — when the case system reported the enforcement proceeding (or the
  court case) closed.

Until the event has happened the message is not expired.

**First match wins**, in the order written. Because that order silently decides, loading
refuses what a reader could misread: a policy that never applies (everything it matches is
taken by earlier ones), and two policies whose claims cross without one being an exception
carved out of the other (write the narrower one first, or make them disjoint). Loading also
refuses a set that leaves any (agreement, kind, direction, party) uncovered, so no message is
kept for ever by oversight: end the list with catch-all policies.

Evaluation (:func:`expires_at`) is pure: no clock, no I/O; ``now`` is the caller's.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import logging
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from gateway.config import NodeConfig
from gateway.model.bodies import BODY_ID_PATTERN
from gateway.model.problems import ConfigurationError
from gateway.model.profiles import PROFILES

log = logging.getLogger(__name__)

POLICY_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
"""Policy names end up in tombstones and purge runs (a 64-character code column) and in logs."""
STATE_PATTERN = re.compile(r"^[A-Z]{2}$")
"""A party given as a state: ISO 3166-1 alpha-2, as in the first part of a body id."""
MAX_KEEP_YEARS = 100
"""Longest period accepted. Nothing in the agreements' field is kept longer than a lifetime; a
larger number is a typo (days written as years), and would overflow dates near year 9999."""
MAX_POLICIES = 200
"""A policy list this long is unreviewable (and the overlap check grows with its square)."""
MAX_EXAMPLES_IN_ERROR = 5
"""How many uncovered/contested cases an error names before it says 'and N more'."""

MINIMUM_KEEP = "1 year"
"""Shortest period a policy may set unless it states why (``below_minimum_reason``): one night
of ``keep = "0 days"`` would destroy every message it matches, and its tombstones would read
as lawful expiry. Neither agreement sets a period; the parties' laws keep case files for
years. A node changes the floor with ``[retention] minimum_keep``."""

_FLOOR_REFERENCE = datetime(2001, 1, 1, tzinfo=UTC)
"""Periods are compared from here (a common year: "1 year" and "365 days" are equal)."""

_PERIOD_PATTERN = re.compile(r"^\s*(\d{1,6})\s+(day|days|month|months|year|years)\s*$")
_POLICY_KEYS = frozenset(
    {
        "name",
        "agreement",
        "kind",
        "direction",
        "party",
        "counts_from",
        "keep",
        "basis",
        "below_minimum_reason",
    }
)
_FILE_KEYS = frozenset({"policy"})
_SECTION_KEYS = frozenset({"policy", "policy_file", "minimum_keep"})


class RetentionEvent(StrEnum):
    """The event a retention period counts from."""

    RECEIVED = "received"
    """The node stored the message (``stored_at``)."""
    CONVERSATION_CLOSED = "conversation-closed"
    """The conversation reached a closed state (answered, refused, withdrawn, …)."""
    PROCEEDING_CLOSED = "proceeding-closed"
    """The case system reported the proceeding (or court case) closed."""


class MessageDirection(StrEnum):
    """Seen from this node (the store's ``messages.direction``)."""

    IN = "in"
    OUT = "out"


class PeriodUnit(StrEnum):
    DAYS = "days"
    MONTHS = "months"
    YEARS = "years"


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period. Months and years end on the same day of the month, or on the month's
    last day when it is shorter (31 January + 1 month = 28/29 February; 29 February + 1 year =
    28 February)."""

    amount: int
    unit: PeriodUnit

    def after(self, start: datetime) -> datetime:
        """The instant ``self`` after ``start``, counted in UTC (what ``dateutil``'s
        ``relativedelta`` gives, done by hand: the purge asks this for every stored message,
        and relativedelta cost ten times more)."""
        start = start.astimezone(UTC)
        if self.unit is PeriodUnit.DAYS:
            return start + timedelta(days=self.amount)
        months = start.month - 1 + self.amount * (12 if self.unit is PeriodUnit.YEARS else 1)
        year, month = start.year + months // 12, months % 12 + 1
        return start.replace(
            year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1])
        )

    def __str__(self) -> str:
        unit = self.unit.value[:-1] if self.amount == 1 else self.unit.value
        return f"{self.amount} {unit}"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    name: str
    """Short code (``cis-received``); written into each tombstone the policy causes."""
    counts_from: RetentionEvent
    keep: Period
    agreements: frozenset[str] = frozenset()
    """Agreement profile ids; empty: any agreement."""
    kinds: frozenset[str] = frozenset()
    """Message kinds (``Request``); empty: any kind."""
    directions: frozenset[MessageDirection] = frozenset()
    """Empty: both directions."""
    parties: frozenset[str] = frozenset()
    """Body ids (``KZ-MJ``) or states (``KZ``) of the other side; empty: any party."""
    basis: str = ""
    """Where the period comes from (the law and article), for the reader and the audit log."""
    below_minimum_reason: str = ""
    """Why the period is shorter than the node's minimum (required then; empty otherwise)."""
    line: int = 0
    """Line of the policy in its file; 0 for the built-in defaults."""

    def matches(self, facts: MessageFacts) -> bool:
        """True when this policy's matchers all accept ``facts``."""
        return (
            (not self.agreements or facts.agreement in self.agreements)
            and (not self.kinds or facts.kind in self.kinds)
            and (not self.directions or facts.direction in self.directions)
            and _party_matches(self.parties, facts.party)
        )

    def canonical(self) -> dict[str, object]:
        """What decides the policy's effect (not its line in the file): hashed into reports
        and tombstones, so that the rule applied is bound to what it destroyed."""
        return {
            "name": self.name,
            "counts_from": self.counts_from.value,
            "keep": str(self.keep),
            "agreements": sorted(self.agreements),
            "kinds": sorted(self.kinds),
            "directions": sorted(d.value for d in self.directions),
            "parties": sorted(self.parties),
            "basis": self.basis,
            "below_minimum_reason": self.below_minimum_reason,
        }

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of :meth:`canonical` as canonical JSON."""
        return _digest(self.canonical())


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What retention needs to know about one stored message (all of it in the store's
    ``messages`` row; nothing from the encrypted payload)."""

    agreement: str
    kind: str
    direction: MessageDirection
    sender: str
    recipient: str
    stored_at: datetime
    """When this node stored the message: the ``received`` event. Aware datetime."""

    @property
    def party(self) -> str:
        """The other side: the sender of a received message, the recipient of a sent one."""
        return self.sender if self.direction == MessageDirection.IN else self.recipient


@dataclass(frozen=True, slots=True)
class ConversationEvents:
    """The conversation's events that periods count from; None: not (yet) happened."""

    conversation_closed_at: datetime | None = None
    proceeding_closed_at: datetime | None = None
    """As reported by the case system; a conversation may outlive or predate it."""


class Expiry(NamedTuple):
    """When a message may be destroyed, and the policy that says so."""

    at: datetime | None
    """None: not expiring yet (the event has not happened) or no policy matched."""
    policy: str
    """The deciding policy's name; empty when no policy matched (the message is kept)."""

    def expired(self, now: datetime) -> bool:
        """True when the message may be purged at ``now`` (the expiry instant itself included)."""
        return self.at is not None and now >= self.at


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[RetentionPolicy, ...]
    source: str
    """The file the policies came from, or ``built-in defaults``."""

    @property
    def is_default(self) -> bool:
        return self.source == DEFAULTS_SOURCE

    @classmethod
    def from_config(cls, config: NodeConfig) -> PolicySet:
        """The node's policies, from its ``[retention]`` section (:func:`load_retention`)."""
        return load_retention(config.extra.get("retention"), config.path)

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the whole set in its written order (first match wins, so order is
        part of the rule): a changed file with the same effect-free edits (comments, lines)
        keeps its hash."""
        return _digest({"policies": [p.canonical() for p in self.policies]})

    def periods(self) -> dict[str, str]:
        """Each policy's period and what it counts from (``5 years after conversation-closed``),
        for the signed report."""
        return {p.name: f"{p.keep} after {p.counts_from.value}" for p in self.policies}

    def below_minimum(self) -> dict[str, str]:
        """Each policy allowed below the node's minimum → the reason it states."""
        return {p.name: p.below_minimum_reason for p in self.policies if p.below_minimum_reason}

    def policy_sha256(self) -> dict[str, str]:
        """Each policy's name → its SHA-256 (what tombstones record)."""
        return {p.name: p.sha256 for p in self.policies}

    def select(self, facts: MessageFacts) -> RetentionPolicy | None:
        """The first policy, in the written order, that matches ``facts``."""
        for policy in self.policies:
            if policy.matches(facts):
                return policy
        return None


def _digest(obj: Mapping[str, Any]) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def expires_at(policy_set: PolicySet, facts: MessageFacts, events: ConversationEvents) -> Expiry:
    """When the message described by ``facts`` expires under ``policy_set`` (first match wins).

    Pure: the caller compares the result with its own ``now`` (:meth:`Expiry.expired`).
    Returns ``Expiry(None, name)`` while the policy's event has not happened, and
    ``Expiry(None, "")`` when no policy matches (a kind unknown to this version: kept).
    """
    return expiry_under(policy_set.select(facts), facts.stored_at, events)


def expiry_under(
    policy: RetentionPolicy | None, stored_at: datetime, events: ConversationEvents
) -> Expiry:
    """:func:`expires_at` once the policy is chosen (``policy_set.select``): a caller deciding
    many messages of the same few kinds and parties chooses once per kind and party."""
    if policy is None:
        return Expiry(None, "")
    start = {
        RetentionEvent.RECEIVED: stored_at,
        RetentionEvent.CONVERSATION_CLOSED: events.conversation_closed_at,
        RetentionEvent.PROCEEDING_CLOSED: events.proceeding_closed_at,
    }[policy.counts_from]
    if start is None:
        return Expiry(None, policy.name)
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"{policy.counts_from.value} time {start!r} is naive; pass an aware time")
    return Expiry(policy.keep.after(start), policy.name)


# --- defaults ---------------------------------------------------------------------------------

DEFAULTS_SOURCE = "built-in defaults"
_DEFAULT_BASIS = (
    "Срок по умолчанию, не взятый из права какого-либо государства: установите его по праву "
    "запрашивающей Стороны (ст. 9.6 Соглашения СНГ)."
)
"""Shown on the console's retention page (in Russian, as every page an operator reads)."""


def _default(name: str, agreement: str, direction: MessageDirection) -> RetentionPolicy:
    return RetentionPolicy(
        name=name,
        counts_from=RetentionEvent.CONVERSATION_CLOSED,
        keep=Period(5, PeriodUnit.YEARS),
        agreements=frozenset({agreement}),
        directions=frozenset({direction}),
        basis=_DEFAULT_BASIS,
    )


DEFAULT_POLICIES = PolicySet(
    policies=(
        _default("cis-received", "cis-enforcement", MessageDirection.IN),
        _default("cis-sent", "cis-enforcement", MessageDirection.OUT),
        _default("courts-received", "ru-kz-supreme-courts", MessageDirection.IN),
        _default("courts-sent", "ru-kz-supreme-courts", MessageDirection.OUT),
    ),
    source=DEFAULTS_SOURCE,
)
"""Used when the node's configuration has no ``[retention]`` policies: every message is kept
5 years after its conversation closed. These are defaults to be replaced by the periods of the
requesting party's law (CIS Art. 9.6); the node logs a warning while it runs on them."""


# --- loading ----------------------------------------------------------------------------------


def load_retention(section: Mapping[str, Any] | None, config_path: Path) -> PolicySet:
    """The policy set of a node: from its ``[retention]`` section (``NodeConfig.extra``).

    ``section`` holds either ``policy_file`` (a path, relative to the configuration file) or
    ``[[retention.policy]]`` tables; absent or empty: :data:`DEFAULT_POLICIES`, with a warning.
    Raises :class:`ConfigurationError` naming the file, the line and the reason.
    """
    config_path = Path(config_path)
    lines = SourceLines.read(config_path)
    if not section:
        log.warning(
            "retention: no [retention] policies in %s; using the built-in defaults (5 years "
            "after the conversation closed). Set the periods from the requesting party's law "
            "(CIS Art. 9.6).",
            config_path,
        )
        return DEFAULT_POLICIES
    if not isinstance(section, Mapping):
        raise _error(config_path, lines.header(("retention",)), "[retention] must be a table")
    for key in section:
        if key not in _SECTION_KEYS:
            raise _error(
                config_path,
                lines.key(("retention",), None, key),
                f"unknown key {key!r} in [retention]; known keys: policy_file, policy, "
                "minimum_keep",
            )
    minimum = _parse_period(section.get("minimum_keep", MINIMUM_KEEP))
    if minimum is None:
        raise _error(
            config_path,
            lines.key(("retention",), None, "minimum_keep"),
            f"minimum_keep {section.get('minimum_keep')!r} is not a period; write e.g. "
            f'"{MINIMUM_KEEP}"',
        )
    if "policy_file" in section and "policy" in section:
        raise _error(
            config_path,
            lines.key(("retention",), None, "policy_file"),
            "[retention] has both policy_file and [[retention.policy]] tables; keep one",
        )
    if "policy_file" in section:
        value = section["policy_file"]
        if not isinstance(value, str) or not value:
            raise _error(
                config_path,
                lines.key(("retention",), None, "policy_file"),
                'policy_file must be a path string, e.g. policy_file = "retention.toml"',
            )
        file = Path(value)
        file = file if file.is_absolute() else config_path.parent / file
        if not file.is_file():
            raise _error(
                config_path,
                lines.key(("retention",), None, "policy_file"),
                f"no such retention policy file {str(file.resolve())!r}; fix policy_file "
                "(relative paths are relative to this configuration file)",
            )
        return load_policy_file(file, minimum=minimum)
    if "policy" not in section:
        raise _error(
            config_path,
            lines.header(("retention",)),
            "[retention] sets no policies; add policy_file or [[retention.policy]] tables",
        )
    return _parse_policy_list(
        section["policy"], config_path, lines, ("retention", "policy"), minimum
    )


def load_policy_file(path: str | Path, *, minimum: Period | None = None) -> PolicySet:
    """Load a separate policy file (``[[policy]]`` tables). Raises :class:`ConfigurationError`."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: no such retention policy file; check [retention] policy_file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{path}: cannot read the policy file: {exc}") from None
    return parse_policies(text, path, minimum=minimum)


def parse_policies(text: str, source: Path, *, minimum: Period | None = None) -> PolicySet:
    """Parse the text of a policy file; ``source`` names it in errors."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line N, column M)".
        raise ConfigurationError(f"{source}: not valid TOML: {exc}") from None
    lines = SourceLines(text)
    for key in raw:
        if key not in _FILE_KEYS:
            raise _error(
                source,
                lines.top_level(key),
                f"unknown key or table {key!r}; a policy file holds only [[policy]] tables",
            )
    if "policy" not in raw:
        raise _error(source, 1, "no [[policy]] table; a policy file needs at least one policy")
    return _parse_policy_list(raw["policy"], source, lines, ("policy",), minimum)


def _parse_policy_list(
    raw: Any,
    source: Path,
    lines: SourceLines,
    table: tuple[str, ...],
    minimum: Period | None = None,
) -> PolicySet:
    where = "[[" + ".".join(table) + "]]"
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise _error(source, lines.top_level(table[-1]), f"policies must be {where} tables")
    if not raw:
        raise _error(source, lines.top_level(table[-1]), f"no {where} table")
    if len(raw) > MAX_POLICIES:
        raise _error(source, 1, f"{len(raw)} policies; at most {MAX_POLICIES} are accepted")
    floor = minimum or _parse_period(MINIMUM_KEEP)
    assert floor is not None
    policies = tuple(
        _parse_policy(item, index, source, lines, table, floor) for index, item in enumerate(raw)
    )
    seen: dict[str, RetentionPolicy] = {}
    for policy in policies:
        if policy.name in seen:
            raise _error(
                source,
                lines.key(table, policies.index(policy), "name"),
                f"policy name {policy.name!r} is already used at line {seen[policy.name].line}; "
                "names must be unique (they are written into tombstones)",
            )
        seen[policy.name] = policy
    _check_order_and_coverage(policies, source)
    return PolicySet(policies, str(source))


def _parse_policy(
    raw: dict[str, Any],
    index: int,
    source: Path,
    lines: SourceLines,
    table: tuple[str, ...],
    floor: Period,
) -> RetentionPolicy:
    header = lines.header(table, index)

    def fail(key: str | None, reason: str) -> ConfigurationError:
        line = lines.key(table, index, key) if key else header
        return _error(source, line, reason)

    for key in raw:
        if key not in _POLICY_KEYS:
            raise fail(
                key,
                f"unknown key {key!r} in a policy; known keys: {', '.join(sorted(_POLICY_KEYS))}",
            )
    for key in ("name", "counts_from", "keep"):
        if key not in raw:
            raise fail(None, f"policy without {key!r}; name, counts_from and keep are mandatory")

    name = raw["name"]
    if not isinstance(name, str) or not POLICY_NAME_PATTERN.fullmatch(name):
        raise fail("name", "name must be a short code of a-z, 0-9 and '-' (e.g. cis-received)")

    counts_from = raw["counts_from"]
    try:
        event = RetentionEvent(counts_from)
    except ValueError:
        raise fail(
            "counts_from",
            f"counts_from {counts_from!r} is not an event; use one of "
            f"{', '.join(e.value for e in RetentionEvent)}",
        ) from None

    keep = _parse_period(raw["keep"])
    if keep is None:
        raise fail(
            "keep",
            f'keep {raw["keep"]!r} is not a period; write e.g. "5 years", "18 months", '
            f'"90 days" (at most {MAX_KEEP_YEARS} years)',
        )
    reason = raw.get("below_minimum_reason")
    if reason is not None and (not isinstance(reason, str) or not reason.strip()):
        raise fail("below_minimum_reason", "below_minimum_reason must be a non-empty sentence")
    if keep.after(_FLOOR_REFERENCE) < floor.after(_FLOOR_REFERENCE) and not reason:
        raise fail(
            "keep",
            f"keep {raw['keep']!r} is shorter than the minimum of {floor} (CIS Art. 9.6: destroy "
            "only what the law no longer requires): a purge under it would destroy what it "
            "matches within days. Set the period from the requesting party's law, or state why "
            'it is shorter: below_minimum_reason = "…" (kept with the policy)',
        )

    def strings(key: str) -> frozenset[str]:
        value = raw.get(key)
        if value is None:
            return frozenset()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise fail(key, f"{key} must be a string or a list of strings")
        if not items:
            raise fail(key, f"{key} is an empty list; leave the key out to match any {key}")
        return frozenset(items)

    agreements = strings("agreement")
    for agreement in sorted(agreements):
        if agreement not in PROFILES:
            raise fail(
                "agreement",
                f"unknown agreement {agreement!r}; known: {', '.join(PROFILES)}",
            )
    kinds = strings("kind")
    scope = [PROFILES[a] for a in sorted(agreements)] if agreements else list(PROFILES.values())
    known_kinds = sorted({k for p in scope for k in p.kinds})
    for kind in sorted(kinds):
        if kind not in known_kinds:
            raise fail(
                "kind",
                f"unknown message kind {kind!r} for {', '.join(p.id for p in scope)}; "
                f"known: {', '.join(known_kinds)}",
            )
    directions_raw = strings("direction")
    try:
        directions = frozenset(MessageDirection(d) for d in directions_raw)
    except ValueError:
        raise fail("direction", 'direction must be "in" (received) or "out" (sent)') from None
    parties = strings("party")
    for party in sorted(parties):
        if not (BODY_ID_PATTERN.fullmatch(party) or STATE_PATTERN.fullmatch(party)):
            raise fail("party", f"party {party!r} must be a body id (KZ-MJ) or a state code (KZ)")
    basis = raw.get("basis", "")
    if not isinstance(basis, str):
        raise fail("basis", "basis must be a string (the law and article the period comes from)")
    return RetentionPolicy(
        name=name,
        counts_from=event,
        keep=keep,
        agreements=agreements,
        kinds=kinds,
        directions=directions,
        parties=parties,
        basis=basis,
        below_minimum_reason=(reason or "").strip(),
        line=header,
    )


def _parse_period(value: Any) -> Period | None:
    if not isinstance(value, str):
        return None
    match = _PERIOD_PATTERN.fullmatch(value)
    if not match:
        return None
    amount = int(match.group(1))
    unit = PeriodUnit(match.group(2) if match.group(2).endswith("s") else match.group(2) + "s")
    limit = {PeriodUnit.DAYS: MAX_KEEP_YEARS * 366, PeriodUnit.MONTHS: MAX_KEEP_YEARS * 12}.get(
        unit, MAX_KEEP_YEARS
    )
    if amount > limit:
        return None
    return Period(amount, unit)


# --- order and coverage ---------------------------------------------------------------------
#
# Parties are an open set, so the checks work on a finite partition of it: each body id named
# in any policy, "any other body" of each state named (or implied by a body id), and "any other
# party". Every policy's party matcher is a union of these atoms, so set algebra on
# (agreement, kind, direction, atom) tuples is exact.

_Case = tuple[str, str, MessageDirection, str]
_OTHER = "*"


def _party_matches(parties: frozenset[str], party: str) -> bool:
    return not parties or party in parties or party[:2] in parties


def _atoms(policies: Iterable[RetentionPolicy]) -> list[str]:
    named = {p for policy in policies for p in policy.parties}
    bodies = sorted(p for p in named if not STATE_PATTERN.fullmatch(p))
    states = sorted({p[:2] for p in named})
    return [*bodies, *(f"{s}-{_OTHER}" for s in states), _OTHER]


def _atom_matched(parties: frozenset[str], atom: str) -> bool:
    if not parties:
        return True
    if atom == _OTHER:
        return False
    if atom.endswith(f"-{_OTHER}"):
        return atom[:2] in parties
    return atom in parties or atom[:2] in parties


def _describe(case: _Case) -> str:
    agreement, kind, direction, atom = case
    side = "from" if direction == MessageDirection.IN else "to"
    if atom == _OTHER:
        who = "any other party"
    elif atom.endswith(f"-{_OTHER}"):
        who = f"any other body of {atom[:2]}"
    else:
        who = atom
    return f"{agreement} {kind} {direction.value} ({side} {who})"


def _examples(cases: Iterable[_Case]) -> str:
    ordered = sorted(cases)
    shown = "; ".join(_describe(c) for c in ordered[:MAX_EXAMPLES_IN_ERROR])
    more = len(ordered) - MAX_EXAMPLES_IN_ERROR
    return shown + (f"; and {more} more" if more > 0 else "")


def _check_order_and_coverage(policies: Sequence[RetentionPolicy], source: Path) -> None:
    atoms = _atoms(policies)
    universe = [
        (profile.id, kind, direction, atom)
        for profile in PROFILES.values()
        for kind in profile.kinds
        for direction in MessageDirection
        for atom in atoms
    ]
    matched = [
        {
            c
            for c in universe
            if (not p.agreements or c[0] in p.agreements)
            and (not p.kinds or c[1] in p.kinds)
            and (not p.directions or c[2] in p.directions)
            and _atom_matched(p.parties, c[3])
        }
        for p in policies
    ]
    claimed: set[_Case] = set()
    effective: list[set[_Case]] = []
    for i, policy in enumerate(policies):
        if not matched[i]:
            raise _error(
                source,
                policy.line,
                f"policy {policy.name!r} matches no message: no kind of the named agreement(s) "
                "has that name; check agreement and kind",
            )
        own = matched[i] - claimed
        if not own:
            earlier = [p for j, p in enumerate(policies[:i]) if matched[i] & effective[j]]
            raise _error(
                source,
                policy.line,
                f"policy {policy.name!r} never applies: every message it matches is taken by "
                f"earlier policies ({', '.join(f'{p.name!r} at line {p.line}' for p in earlier)})"
                "; first match wins, so move it up or remove it",
            )
        for j in range(i):
            contested = matched[i] & effective[j]
            if contested and not effective[j] <= matched[i]:
                other = policies[j]
                raise _error(
                    source,
                    policy.line,
                    f"policies {other.name!r} (line {other.line}) and {policy.name!r} both match "
                    f"{_examples(contested)}, and neither is an exception of the other; "
                    "first match wins would silently give these to the earlier one. Put a "
                    "policy for exactly these cases first, or make the two disjoint",
                )
        effective.append(own)
        claimed |= own
    uncovered = set(universe) - claimed
    if uncovered:
        raise _error(
            source,
            policies[-1].line,
            f"no policy covers {_examples(uncovered)}; such messages would be kept for ever. "
            "End the list with catch-all policies (e.g. one per agreement without kind, "
            "direction or party)",
        )


# --- locating lines ---------------------------------------------------------------------------
#
# tomllib reports line numbers only for syntax errors. For semantic errors we find the line
# ourselves: the n-th header of the table array, then the key inside that table.

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")


def _normalise_header(text: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in text.split("."))


class SourceLines:
    """Finds the line of a table or key in TOML text (tomllib gives lines only for syntax
    errors). Heuristic but safe: when unsure it answers with the enclosing table's line."""

    def __init__(self, text: str | None) -> None:
        self._lines = text.splitlines() if text is not None else []

    @classmethod
    def read(cls, path: Path) -> SourceLines:
        try:
            return cls(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return cls(None)

    def _headers(self) -> list[tuple[int, tuple[str, ...], bool]]:
        found = []
        for number, line in enumerate(self._lines, start=1):
            match = _HEADER.fullmatch(line)
            if match:
                found.append((number, _normalise_header(match.group(2)), match.group(1) == "[["))
        return found

    def header(self, table: tuple[str, ...], index: int | None = None) -> int:
        """Line of ``[table]`` (index None) or of the index-th ``[[table]]``; 0 if not found."""
        count = 0
        for number, name, is_array in self._headers():
            if name != table:
                continue
            if index is None and not is_array:
                return number
            if index is not None and is_array:
                if count == index:
                    return number
                count += 1
        return 0

    def key(self, table: tuple[str, ...], index: int | None, key: str) -> int:
        """Line of ``key = …`` inside the table; the table's header line if not found."""
        start = self.header(table, index)
        if start == 0:
            return self.top_level(table[-1])
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number in range(start + 1, len(self._lines) + 1):
            text = self._lines[number - 1]
            if _HEADER.fullmatch(text):
                break
            if pattern.match(text):
                return number
        return start

    def top_level(self, key: str) -> int:
        """Line of a top-level ``key = …`` or of a ``[key]``/``[[key]]`` header; else 1."""
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for number, line in enumerate(self._lines, start=1):
            if _HEADER.fullmatch(line):
                match = _HEADER.fullmatch(line)
                assert match is not None
                if _normalise_header(match.group(2))[0] == key:
                    return number
                continue
            if pattern.match(line):
                return number
        return 1


def _error(source: Path, line: int, reason: str) -> ConfigurationError:
    where = f"{source}:{line}" if line else str(source)
    return ConfigurationError(f"{where}: {reason} (retention policies, CIS Art. 9.6)")
