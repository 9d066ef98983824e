"""Bodies (central and territorial, CIS Art. 18) and their identifiers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

BODY_ID_PATTERN = re.compile(r"^[A-Z]{2}-[A-Z0-9][A-Z0-9-]{1,31}$")
"""A body id: the state's ISO 3166-1 alpha-2 code, a dash, an upper-case name (``RU-FSSP``).
The same id is the certificate's ``organizationIdentifier`` (OID 2.5.4.97)."""


class BodyLevel(StrEnum):
    CENTRAL = "central"
    TERRITORIAL = "territorial"


def state_of(body_id: str) -> str:
    """The state (ISO alpha-2) a body id belongs to."""
    if not BODY_ID_PATTERN.fullmatch(body_id):
        raise ValueError(
            f"body id {body_id!r} must look like RU-FSSP: state code, dash, 2-32 of A-Z 0-9 -"
        )
    return body_id[:2]


@dataclass(frozen=True, slots=True)
class Body:
    id: str
    state: str
    level: BodyLevel
    name_ru: str
    agreements: tuple[str, ...]
    """Profile ids this body exchanges under."""


# The demo's four bodies (fictitious node data; names of real institutions).
DEMO_BODIES = (
    Body(
        "RU-FSSP",
        "RU",
        BodyLevel.CENTRAL,
        "Федеральная служба судебных приставов",
        ("cis-enforcement",),
    ),
    Body(
        "KZ-MJ",
        "KZ",
        BodyLevel.CENTRAL,
        "Министерство юстиции Республики Казахстан (Департамент исполнительного производства)",
        ("cis-enforcement",),
    ),
    Body(
        "RU-VS",
        "RU",
        BodyLevel.CENTRAL,
        "Верховный Суд Российской Федерации (Управление международного сотрудничества)",
        ("ru-kz-supreme-courts",),
    ),
    Body(
        "KZ-VS",
        "KZ",
        BodyLevel.CENTRAL,
        "Верховный Суд Республики Казахстан (Отдел международных связей Судебной администрации)",
        ("ru-kz-supreme-courts",),
    ),
)
