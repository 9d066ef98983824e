"""Reservations and declarations that change what a request may ask (CIS Art. 13, 25; KZ on 6 а)).

Two kinds, as :class:`~gateway.model.profiles.Reservation` ``code`` says:

* ``non-application`` (CIS Art. 25): a party declared that it will not apply the agreement to
  enforcement documents issued by authorities or officials outside the judiciary, or to
  notarised documents. A request based on such a document — whichever of the two parties
  declared it — may be refused (CIS Art. 13): an ERROR, ``RESERVATION_ART25_NON_APPLICATION``.
* ``limits-article``: a party applies an article only as far as its law allows. Kazakhstan did so
  for Art. 6 а) (money in bank accounts, deposits, safekeeping). When Kazakhstan is the requested
  party and the request asks about bank accounts, the answer may be limited: a WARNING,
  ``RESERVATION_KZ_ART6A`` (``RESERVATION_<state>_<article>`` for any such reservation).

Partial non-application (Art. 25 para. 2: the declaring party "определяет в заявлении конкретные
положения Соглашения, которые она не будет применять") names the request subjects it covers in
``Reservation.scope``; it covers those and nothing else.

Where the reservations come from: the signed directory of bodies, where the depositary's
publications are entered item by item (``Reservations`` of each body, see
``gateway/schemas/directory.xsd``). Only a directory that carries no reservation at all for an
agreement falls back to the profile's list (:func:`reservations_in_use`).

Reciprocity. The agreement says nothing about it: Art. 25 only lets a party declare. The general
law of treaties does (Vienna Convention on the Law of Treaties 1969, Art. 21 para. 1 b)): a
reservation modifies the same provisions to the same extent for the other party in its relations
with the reserving state. So where the declaring state is the requesting party, the requested
party may apply the same limit towards it: a WARNING, ``RESERVATION_RECIPROCITY``, never an error.

A refusal citing the Art. 25 ground (:func:`refusal_problems`) must rest on a declaration one of
the two parties made that covers the request: otherwise an ERROR, refused at submit and on
receipt.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from gateway.model.problems import ConfigurationError, Problem, Severity
from gateway.model.profiles import AgreementProfile, Reservation

NON_APPLICATION = "non-application"
LIMITS_ARTICLE = "limits-article"
RESERVATION_CODES = frozenset({NON_APPLICATION, LIMITS_ARTICLE})

ISSUER_KINDS = frozenset({"court", "authority", "official", "notary"})
"""Who issued the enforcement document (CIS Art. 1): a court, an authority or an official
outside the judiciary, or a notary (a notarised document)."""

ART25_EXCLUDABLE_ISSUERS = frozenset({"authority", "official", "notary"})
"""Art. 25 allows declarations only for non-judicial authorities and officials and notarised
documents; court documents are always covered."""

ISSUER_KIND_PATH = "/Envelope/Body/Request/EnforcementDocument/Issuer/Kind"
"""Where ``gateway/schemas/cis-enforcement.xsd`` puts the issuer kind."""

ART25_REFUSAL_GROUND = "non-application-declaration"
"""The Art. 25 value of ``RefusalGround`` in ``gateway/schemas/cis-enforcement.xsd``."""

_ISSUER_RU = {
    "court": "судом",
    "authority": "уполномоченным органом, не входящим в судебную систему",
    "official": "должностным лицом, не входящим в судебную систему",
    "notary": "нотариусом (нотариально заверенный документ)",
}

_ROLE_RU = {True: "запрашивающая Сторона", False: "запрашиваемая Сторона"}

ASSET_KINDS = frozenset({"bank-accounts", "real-estate", "vehicles", "shares", "other"})
"""``AssetKind`` of ``gateway/schemas/cis-enforcement.xsd``: the items of Art. 6 а)–д)."""

RECIPROCITY_ARTICLE = "Венская конвенция о праве международных договоров 1969 г., ст. 21 п. 1 б)"
"""Where reciprocity comes from: the agreement itself is silent (module docstring)."""

REFUSAL_GROUND_PATH = "/Envelope/Body/Refusal/Ground"


@dataclass(frozen=True, slots=True)
class _LimitedArticle:
    subject: str
    """Subject name the caller passes in ``subjects`` for this article."""
    aliases: frozenset[str]
    """Other spellings accepted, e.g. the XSD's ``AssetKind`` value."""
    path: str
    code_suffix: str
    article_ru: str
    what_ru: str


# Articles a ``limits-article`` reservation may limit, and the request subject each concerns.
# Keys use the Cyrillic letter, as the agreement and the profile do.
_LIMITED_ARTICLES = {
    "CIS Art. 6 а)": _LimitedArticle(
        "BankAccounts",
        frozenset({"bank-accounts"}),  # gateway/schemas/cis-enforcement.xsd AssetKind
        "/Envelope/Body/Request/Subjects/Assets/Kind",
        "ART6A",
        "подпункт а) статьи 6 Соглашения",
        "о денежных средствах на счетах, во вкладах или на хранении в банках",
    ),
}


def _article_key(article: str) -> str:
    # Latin "a" typed for the Cyrillic "а" would silently miss the reservation.
    return article.replace("6 a)", "6 а)")


@dataclass(frozen=True, slots=True)
class RefusalGround:
    """A ground for refusal the console offers, backed by a declaration (CIS Art. 13)."""

    code: str
    """The ``RefusalGround`` value of ``gateway/schemas/cis-enforcement.xsd`` the refusal carries,
    e.g. ``non-application-declaration``."""
    article: str
    text_ru: str
    """The ground as the refusal states it, in Russian (CIS Art. 19)."""
    declared_by: str
    """State (ISO alpha-2) whose declaration supports the ground."""
    reservation: Reservation


def validate_reservations(reservations: Iterable[Reservation]) -> None:
    """Raise ConfigurationError for a reservation the rules cannot apply (unknown code, unknown
    issuer kind, a court excluded under Art. 25, an article the rules do not know)."""
    for r in reservations:
        where = f"reservation of {r.state} to {r.agreement} ({r.article})"
        if r.code not in RESERVATION_CODES:
            raise ConfigurationError(
                f"{where}: code {r.code!r} unknown; "
                f"use one of {', '.join(sorted(RESERVATION_CODES))}"
            )
        if r.code == NON_APPLICATION:
            if not r.issuer_kinds:
                raise ConfigurationError(
                    f"{where}: a non-application declaration (CIS Art. 25) needs issuer_kinds"
                )
            wrong = r.issuer_kinds - ART25_EXCLUDABLE_ISSUERS
            if wrong:
                raise ConfigurationError(
                    f"{where}: issuer_kinds {sorted(wrong)} cannot be excluded; CIS Art. 25 "
                    f"allows only {', '.join(sorted(ART25_EXCLUDABLE_ISSUERS))}"
                )
        elif r.scope:
            raise ConfigurationError(
                f"{where}: only a non-application declaration (CIS Art. 25) has a scope"
            )
        elif _article_key(r.article) not in _LIMITED_ARTICLES:
            raise ConfigurationError(
                f"{where}: the rules know limits only on {', '.join(_LIMITED_ARTICLES)}"
            )


def reservations_in_use(
    known: Iterable[Reservation], published: Iterable[Reservation], *, directory_has_any: bool
) -> tuple[Reservation, ...]:
    """The reservations the rules apply: those the directory publishes; the profile's ``known``
    list only when the directory carries no reservation for the agreement at all (a directory
    made before it carried them; docs/rules.md says so)."""
    return tuple(published) if directory_has_any else tuple(known)


def in_effect(reservations: Iterable[Reservation], on: date) -> tuple[Reservation, ...]:
    """Those in effect on day ``on`` (``since`` not after it)."""
    return tuple(r for r in reservations if r.since is None or r.since <= on)


def request_items(subjects: Iterable[str]) -> frozenset[str]:
    """The request's subjects as a declaration's scope names them: an ``Assets`` subject is
    its asset kinds, when it names any."""
    items = set(subjects)
    if items & ASSET_KINDS:
        items.discard("Assets")
    return frozenset(items)


def _covered(item: str, scope: frozenset[str]) -> bool:
    return not scope or item in scope or (item in ASSET_KINDS and "Assets" in scope)


def _relevant(
    profile: AgreementProfile,
    reservations: Iterable[Reservation],
    states: Iterable[str],
    code: str,
) -> list[Reservation]:
    wanted = set(states)
    return [
        r
        for r in reservations
        if r.agreement == profile.id and r.code == code and r.state in wanted
    ]


def _check_issuer(issuer_kind: str | None) -> None:
    if issuer_kind is not None and issuer_kind not in ISSUER_KINDS:
        raise ValueError(
            f"issuer_kind {issuer_kind!r} unknown; use one of {', '.join(sorted(ISSUER_KINDS))}"
        )


def _art25_problem(r: Reservation, requesting_state: str, issuer_kind: str) -> Problem:
    role = _ROLE_RU[r.state == requesting_state]
    return Problem(
        code="RESERVATION_ART25_NON_APPLICATION",
        path=ISSUER_KIND_PATH,
        message_ru=(
            f"Исполнительный документ выдан {_ISSUER_RU[issuer_kind]}; {role} ({r.state}) "
            "заявила о неприменении Соглашения к таким документам. Это основание для отказа "
            "в исполнении запроса."
        ),
        message_en=(
            f"the enforcement document's issuer is {issuer_kind!r}, for which {r.state} declared "
            "non-application of the agreement: a ground for refusal."
        ),
        remedy_ru=(
            "Не направляйте запрос по этому соглашению на основании такого документа; "
            "при получении — откажите в исполнении со ссылкой на статьи 13 и 25."
        ),
        article="CIS Art. 13, 25",
    )


def _art25_partial_problem(r: Reservation, requesting_state: str, covered: list[str]) -> Problem:
    role = _ROLE_RU[r.state == requesting_state]
    items = ", ".join(covered)
    return Problem(
        code="RESERVATION_ART25_PARTIAL",
        path=ISSUER_KIND_PATH,
        message_ru=(
            f"{role.capitalize()} ({r.state}) заявила о частичном неприменении Соглашения "
            f"(статья 25): заявление охватывает только {items}. В этой части запрос может быть "
            "не исполнен; остальное исполняется."
        ),
        message_en=(
            f"{r.state}'s partial Art. 25 declaration covers only {items} of this request; "
            "the rest must be executed."
        ),
        remedy_ru="Учтите заявление; запрос можно направить.",
        article="CIS Art. 25",
        severity=Severity.WARNING,
    )


def reciprocity_problem(r: Reservation, other_state: str, path: str) -> Problem:
    """The reciprocity note: ``other_state`` may apply ``r``'s limit towards ``r.state``."""
    return Problem(
        code="RESERVATION_RECIPROCITY",
        path=path,
        message_ru=(
            f"{r.state} сделала оговорку ({r.article}). Соглашение о взаимности не говорит, но по "
            f"общему праву договоров ({RECIPROCITY_ARTICLE}) {other_state} вправе применить то "
            f"же ограничение в отношениях с {r.state}: ответ может быть ограничен так же."
        ),
        message_en=(
            f"{r.state} made a reservation ({r.article}); {other_state} may apply the same "
            "limit towards it (Vienna Convention 1969, Art. 21.1 b); the agreement is silent)."
        ),
        remedy_ru="Учтите возможную взаимность; документ можно направить.",
        article=f"{r.article}; {RECIPROCITY_ARTICLE}",
        severity=Severity.WARNING,
    )


def reservation_problems(
    profile: AgreementProfile,
    reservations: Iterable[Reservation],
    requesting_state: str,
    requested_state: str,
    issuer_kind: str | None,
    subjects: set[str],
) -> list[Problem]:
    """Problems that the parties' reservations raise for a request.

    ``issuer_kind``: who issued the enforcement document (``court``, ``authority``, ``official``,
    ``notary``), None when the document names none. ``subjects``: the request's subject names
    (``BankAccounts``, or the XSD's asset kind ``bank-accounts``, ...).

    Errors: ``RESERVATION_ART25_NON_APPLICATION``. Warnings:
    ``RESERVATION_<state>_<article>`` (``RESERVATION_KZ_ART6A``) and
    ``RESERVATION_ART25_ISSUER_UNKNOWN`` (a party declared non-application but the request does
    not say who issued the document, so the operator must check).
    """
    reservations = list(reservations)
    _check_issuer(issuer_kind)
    problems: list[Problem] = []
    declared = _relevant(
        profile, reservations, (requesting_state, requested_state), NON_APPLICATION
    )
    if issuer_kind is None and declared:
        states = ", ".join(sorted({r.state for r in declared}))
        problems.append(
            Problem(
                code="RESERVATION_ART25_ISSUER_UNKNOWN",
                path=ISSUER_KIND_PATH,
                message_ru=(
                    f"Не указано, кем выдан исполнительный документ, а {states} заявили о "
                    "неприменении Соглашения к документам несудебных органов, должностных лиц "
                    "или нотариально заверенным документам."
                ),
                message_en=(
                    f"issuer of the enforcement document unknown; {states} declared "
                    "non-application under Art. 25."
                ),
                remedy_ru="Проверьте, кем выдан исполнительный документ.",
                article="CIS Art. 25",
                severity=Severity.WARNING,
            )
        )
    elif issuer_kind is not None:
        items = request_items(subjects)
        for r in declared:
            if issuer_kind not in r.issuer_kinds:
                continue
            covered = sorted(i for i in items if _covered(i, r.scope))
            if len(covered) == len(items):
                problems.append(_art25_problem(r, requesting_state, issuer_kind))
            elif covered:
                problems.append(_art25_partial_problem(r, requesting_state, covered))
    for r in _relevant(profile, reservations, (requesting_state,), LIMITS_ARTICLE):
        limited = _LIMITED_ARTICLES.get(_article_key(r.article))
        if limited is not None and {limited.subject, *limited.aliases} & subjects:
            problems.append(reciprocity_problem(r, requested_state, limited.path))
    for r in _relevant(profile, reservations, (requested_state,), LIMITS_ARTICLE):
        limited = _LIMITED_ARTICLES.get(_article_key(r.article))
        if limited is None or not ({limited.subject, *limited.aliases} & subjects):
            continue
        problems.append(
            Problem(
                code=f"RESERVATION_{r.state}_{limited.code_suffix}",
                path=limited.path,
                message_ru=(
                    f"Запрашиваемая Сторона ({r.state}) применяет {limited.article_ru} (сведения "
                    f"{limited.what_ru}) лишь в части, не противоречащей её законодательству: "
                    "ответ может быть неполным."
                ),
                message_en=(
                    f"{r.state} applies {r.article} only as far as its law allows; the answer "
                    f"about {limited.subject} may be limited."
                ),
                remedy_ru="Учтите оговорку; запрос можно направить.",
                article=r.article,
                severity=Severity.WARNING,
            )
        )
    return problems


def refusal_grounds_for(
    profile: AgreementProfile,
    reservations: Iterable[Reservation],
    requesting_state: str,
    requested_state: str,
    issuer_kind: str | None,
    subjects: set[str] | None = None,
) -> tuple[RefusalGround, ...]:
    """Grounds for refusal (CIS Art. 13) that a declaration supports for this request: one per
    Art. 25 declaration of either party covering ``issuer_kind`` (and, given ``subjects``,
    every one of them: a partial declaration supports no refusal of the rest). Limiting
    reservations (KZ on Art. 6 а)) limit the answer and give no ground. Empty when
    ``issuer_kind`` is None."""
    _check_issuer(issuer_kind)
    if issuer_kind is None:
        return ()
    declared = _relevant(
        profile, reservations, (requesting_state, requested_state), NON_APPLICATION
    )
    return tuple(
        RefusalGround(
            code=ART25_REFUSAL_GROUND,
            article="CIS Art. 13, 25",
            text_ru=(
                "Запрос направлен на основании исполнительного документа, выданного "
                f"{_ISSUER_RU[issuer_kind]}, в отношении которого "
                f"{_ROLE_RU[r.state == requesting_state]} ({r.state}) заявила о неприменении "
                "Соглашения в соответствии со статьёй 25."
            ),
            declared_by=r.state,
            reservation=r,
        )
        for r in declared
        if issuer_kind in r.issuer_kinds
        and (subjects is None or all(_covered(i, r.scope) for i in request_items(subjects)))
    )


REFUSAL_ERROR_CODES = frozenset(
    {
        "RESERVATION_ART25_UNDECLARED",
        "RESERVATION_ART25_NOT_COVERED",
        "RESERVATION_ART25_OUT_OF_SCOPE",
    }
)
"""Errors of a refusal citing Art. 25 without a declaration behind it: refused on submit and on
receipt alike (the request-level Art. 25 error is the requested operator's ground, not the
gateway's)."""


def _refusal_error(code: str, message_ru: str, message_en: str, severity: Severity) -> Problem:
    return Problem(
        code=code,
        path=REFUSAL_GROUND_PATH,
        message_ru=message_ru,
        message_en=message_en,
        remedy_ru=(
            "Уберите основание «заявление о неприменении (ст. 25)» или укажите основание "
            "статьи 13, которое действительно применимо."
        ),
        article="CIS Art. 13, 25",
        severity=severity,
    )


def refusal_problems(
    profile: AgreementProfile,
    reservations: Iterable[Reservation],
    requesting_state: str,
    requested_state: str,
    grounds: Sequence[str],
    request: tuple[str | None, set[str]] | None,
) -> list[Problem]:
    """Problems of a refusal's grounds against the parties' declarations (CIS Art. 13, 25).

    ``request``: the refused request's issuer kind and subjects (as :func:`reservation_problems`
    takes them), None when the request cannot be read here; then only the existence of a
    declaration is checked. Errors: ``RESERVATION_ART25_UNDECLARED`` (neither party declared
    non-application), ``RESERVATION_ART25_NOT_COVERED`` (no declaration covers the document's
    issuer), ``RESERVATION_ART25_OUT_OF_SCOPE`` (Art. 25 is the only ground but a partial
    declaration does not cover every subject; a WARNING beside other grounds). Warning:
    ``RESERVATION_RECIPROCITY`` (only the requesting state declared it)."""
    if ART25_REFUSAL_GROUND not in grounds:
        return []
    declared = _relevant(
        profile, reservations, (requesting_state, requested_state), NON_APPLICATION
    )
    if not declared:
        return [
            _refusal_error(
                "RESERVATION_ART25_UNDECLARED",
                f"Отказ ссылается на заявление о неприменении Соглашения (статья 25), но ни "
                f"{requested_state}, ни {requesting_state} такого заявления не делали (по "
                "справочнику органов).",
                f"the refusal cites an Art. 25 declaration, but neither {requested_state} nor "
                f"{requesting_state} made one (directory of bodies)",
                Severity.ERROR,
            )
        ]
    if request is None:
        return []
    issuer_kind, subjects = request
    if issuer_kind is None:
        return []
    covering = [r for r in declared if issuer_kind in r.issuer_kinds]
    if not covering:
        states = ", ".join(sorted({r.state for r in declared}))
        return [
            _refusal_error(
                "RESERVATION_ART25_NOT_COVERED",
                f"Заявление о неприменении ({states}) не охватывает исполнительные документы, "
                f"выданные {_ISSUER_RU.get(issuer_kind, issuer_kind)}.",
                f"the Art. 25 declaration of {states} does not cover issuer {issuer_kind!r}",
                Severity.ERROR,
            )
        ]
    problems: list[Problem] = []
    uncovered = sorted(
        i for i in request_items(subjects) if not any(_covered(i, r.scope) for r in covering)
    )
    if uncovered:
        alone = all(g == ART25_REFUSAL_GROUND for g in grounds)
        problems.append(
            _refusal_error(
                "RESERVATION_ART25_OUT_OF_SCOPE",
                "Заявление о частичном неприменении (статья 25) не охватывает часть запроса: "
                f"{', '.join(uncovered)}. В этой части отказ по статье 25 невозможен.",
                f"the partial Art. 25 declaration does not cover {', '.join(uncovered)}",
                Severity.ERROR if alone else Severity.WARNING,
            )
        )
    if all(r.state == requesting_state for r in covering):
        problems.append(reciprocity_problem(covering[0], requested_state, REFUSAL_GROUND_PATH))
    return problems
