"""The agreement-level rules of one document, glued together: in force between the two parties
on the day (CIS Art. 22–24; SC Art. 13) and reservations (CIS Art. 25; Kazakhstan on Art. 6 а)).

Content rules that need nothing but the document are in :mod:`gateway.rules.content`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lxml import etree

from gateway.model.bodies import state_of
from gateway.model.envelope import Header
from gateway.model.problems import Problem
from gateway.model.profiles import Participation, Reservation, profile
from gateway.rules.in_force import agreement_in_force_problems
from gateway.rules.reservations import (
    in_effect,
    refusal_problems,
    reservation_problems,
    reservations_in_use,
)


@dataclass(frozen=True, slots=True)
class PartiesContext:
    """What the directory of bodies says about the two parties of a conversation."""

    requesting_body: str
    requested_body: str
    participations: tuple[Participation, ...]
    reservations: tuple[Reservation, ...]
    conversation_started_on: date | None = None
    """For a reply: when the conversation began (SC Art. 13.2: begun before termination, it
    continues)."""
    directory_has_reservations: bool = True
    """The directory carries at least one reservation for the agreement; when it carries none,
    the profile's list is used instead (:func:`gateway.rules.reservations.reservations_in_use`)."""
    request: tuple[str | None, set[str]] | None = None
    """For a refusal: the refused request's facts (:func:`request_facts`), None when unknown."""


def request_facts(root: etree._Element) -> tuple[str | None, set[str]]:
    """The enforcement document's issuer kind and the subjects a Request asks about
    (subject element names and asset kinds), for the reservation rules."""
    body = next((c for c in root.iterchildren() if etree.QName(c).localname == "Body"), None)
    request = body[0] if body is not None and len(body) else None
    if request is None or etree.QName(request).localname != "Request":
        return None, set()
    # One walk in C over the elements named Kind or Subject (a 10 KB Request: ~30 µs, where
    # three XPath searches by local-name() took ~150 µs); the last issuer kind in document order.
    issuer_kind: str | None = None
    subjects: set[str] = set()
    for node in request.iter("{*}Kind", "{*}Subject"):
        parent = node.getparent()
        if etree.QName(node).localname == "Subject":
            subjects.update(etree.QName(c).localname for c in node.iterchildren(etree.Element))
        elif parent is None:
            continue
        elif (owner := etree.QName(parent).localname) == "Issuer":
            issuer_kind = (node.text or "").strip() or None
        elif owner == "Assets":
            subjects.add((node.text or "").strip())
    return issuer_kind, subjects


def agreement_problems(
    root: etree._Element, header: Header, parties: PartiesContext, on: date
) -> list[Problem]:
    """In-force and reservation problems of a document on day ``on``; empty when none."""
    agreement = profile(header.agreement)
    requesting_state = state_of(parties.requesting_body)
    requested_state = state_of(parties.requested_body)
    problems = agreement_in_force_problems(
        agreement,
        parties.participations,
        requesting_state,
        requested_state,
        on,
        conversation_started_on=parties.conversation_started_on,
    )
    reservations = in_effect(
        reservations_in_use(
            agreement.reservations,
            parties.reservations,
            directory_has_any=parties.directory_has_reservations,
        ),
        on,
    )
    if header.kind == "Request":
        issuer_kind, subjects = request_facts(root)
        problems += reservation_problems(
            agreement, reservations, requesting_state, requested_state, issuer_kind, subjects
        )
    elif header.kind == "Refusal":
        problems += refusal_problems(
            agreement,
            reservations,
            requesting_state,
            requested_state,
            refusal_grounds(root),
            parties.request,
        )
    return problems


def refusal_grounds(root: etree._Element) -> list[str]:
    """The ``Ground`` values of a Refusal."""
    body = next((c for c in root.iterchildren() if etree.QName(c).localname == "Body"), None)
    refusal = body[0] if body is not None and len(body) else None
    if refusal is None:
        return []
    return [
        (child.text or "").strip()
        for child in refusal
        if isinstance(child.tag, str) and etree.QName(child).localname == "Ground"
    ]
