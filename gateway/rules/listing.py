"""What the conversation list shows of a conversation's opening document, and what it is found by.

The list names each conversation by its case number and its debtor, so that two rows differ by
more than their state (issue #15). Both come from the opening document as it was recorded:

* **case number** — the enforcement proceeding's number (CIS ``Request/Proceeding/Number``);
* **debtor** — masked, because the list is read without a stated purpose and every document
  holds personal data (CIS Art. 9.1, 9.4): a person shows as surname and initials
  («Примеров И. В.»), never with birth date, address or identifiers; an organisation shows by
  its name (not a person's data). The full record is read in the document, for a purpose.

A confidential conversation's row shows neither to a user without ``confidential-reader``
(CIS Art. 16; SC Art. 8.1): that is decided where the list is read (gateway.exchange.listing).
The Supreme Courts' documents name no debtor and no case number: their rows show neither.

The search index is keyed on the debtor's full name and on its shorter forms (surname and
name; surname alone), so an operator can search by what is on the paper in front of them.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True, slots=True)
class ListingFacts:
    case_number: str | None
    debtor: str | None
    """Masked for the list: «Фамилия И. О.» or an organisation's name."""
    debtor_names: tuple[str, ...] = ()
    """The forms the search index tags: full name, surname and name, surname."""


def listing_facts(root: etree._Element) -> ListingFacts:
    """The list's facts of an opening document (an envelope); empty for kinds without them."""
    body = _child(root, "Body")
    document = body[0] if body is not None and len(body) else None
    if document is None:
        return ListingFacts(None, None)
    case_number = _text(_child(_child(document, "Proceeding"), "Number")) or None
    debtor = _child(document, "Debtor")
    person = _child(debtor, "Individual")
    if person is not None:
        return _individual(case_number, person)
    organisation = _text(_child(_child(debtor, "LegalEntity"), "Name")) or None
    return ListingFacts(case_number, organisation, (organisation,) if organisation else ())


def mask_person(surname: str, name: str, patronymic: str = "") -> str:
    """«Примеров И. В.»: the surname and the initials of the other names that are given."""
    initials = " ".join(f"{part[0].upper()}." for part in (name, patronymic) if part)
    return f"{surname} {initials}".strip()


def _individual(case_number: str | None, person: etree._Element) -> ListingFacts:
    surname, name, patronymic = (
        _text(_child(person, part)) for part in ("Surname", "Name", "Patronymic")
    )
    if not surname:
        return ListingFacts(case_number, None)
    forms = [" ".join(p for p in (surname, name, patronymic) if p), f"{surname} {name}", surname]
    names = tuple(dict.fromkeys(form.strip() for form in forms if form.strip()))
    return ListingFacts(case_number, mask_person(surname, name, patronymic), names)


def _child(parent: etree._Element | None, local_name: str) -> etree._Element | None:
    if parent is None:
        return None
    for child in parent.iterchildren():
        if isinstance(child.tag, str) and etree.QName(child).localname == local_name:
            return child
    return None


def _text(node: etree._Element | None) -> str:
    return " ".join((node.text or "").split()) if node is not None else ""
