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

Partial non-application (Art. 25 para. 2, "конкретные положения") is treated as covering the whole
request: the model has no field yet naming the provisions a declaration excludes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
        elif _article_key(r.article) not in _LIMITED_ARTICLES:
            raise ConfigurationError(
                f"{where}: the rules know limits only on {', '.join(_LIMITED_ARTICLES)}"
            )


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
        problems += [
            _art25_problem(r, requesting_state, issuer_kind)
            for r in declared
            if issuer_kind in r.issuer_kinds
        ]
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
) -> tuple[RefusalGround, ...]:
    """Grounds for refusal (CIS Art. 13) that a declaration supports for this request: one per
    Art. 25 declaration of either party covering ``issuer_kind``. Limiting reservations (KZ on
    Art. 6 а)) limit the answer and give no ground. Empty when ``issuer_kind`` is None."""
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
    )
