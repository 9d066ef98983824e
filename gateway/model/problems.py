"""Structured problems: what every rejection in the gateway is made of.

A :class:`Problem` names the field (an XPath-like path in the document), the rule (a stable
English code for programs), the agreement article where one applies, a Russian message for
operators (CIS Art. 19; SC Art. 11), an English message, and what to do about it.

Exception tree::

    GatewayError
    ├── DocumentRejected      one or more Problems with a document (schema, rules, parsing)
    └── ConfigurationError    a node's configuration or a policy file is wrong

    Refused (a ValueError)    an act the node will not do as asked; nothing changed
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, ClassVar


class Severity(StrEnum):
    ERROR = "error"
    """The document is refused."""
    WARNING = "warning"
    """The document passes, but the operator must know (e.g. the Kazakh reservation on Art. 6 a)."""


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    """Stable machine code, e.g. ``RULE_INCOME_PERIOD_TOO_LONG``. Never changes once published."""
    path: str
    """Where in the document, e.g. ``/Envelope/Body/Request/Subjects/Income``; ``/``: all of it."""
    message_ru: str
    """What is wrong, in Russian, for the operator."""
    message_en: str
    """The same in English, for logs of programs and for developers."""
    remedy_ru: str = ""
    """What to do, in Russian."""
    article: str = ""
    """Agreement article where the rule comes from, e.g. ``CIS Art. 7`` or ``SC Art. 5.1``."""
    severity: Severity = Severity.ERROR

    def to_json(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items()}

    def summary(self) -> str:
        where = f" [{self.article}]" if self.article else ""
        todo = f" Что сделать: {self.remedy_ru}" if self.remedy_ru else ""
        return f"{self.code} at {self.path}{where}: {self.message_ru}{todo}"


class GatewayError(Exception):
    """Root of the gateway's own exceptions."""


class DocumentRejected(GatewayError):
    """A document breaks one or more rules; :attr:`problems` says which, where and why."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        if not self.problems:
            raise ValueError("DocumentRejected needs at least one problem")
        super().__init__("; ".join(p.summary() for p in self.problems))

    @property
    def code(self) -> str:
        """The first problem's code: the one a peer is told."""
        return self.problems[0].code


class ConfigurationError(GatewayError):
    """The node's configuration (or a policy file) is wrong; the message names file, line, key."""


class Refused(ValueError):
    """An act the node will not do as asked (a record of an original, a proceeding's closing);
    nothing was changed. :attr:`code` is stable (for programs), ``str()`` the English message,
    :attr:`message_ru` says why and what to do (CIS Art. 19), :attr:`extra` what an answer
    carries besides (the field, the article). :attr:`conflict`: the record's own state is the
    cause (HTTP 409), not the input (422) — the local API and the console map it once."""

    CONFLICTS: ClassVar[frozenset[str]] = frozenset()
    """The codes the record's state causes; each kind of refusal lists its own."""

    def __init__(
        self, code: str, message: str, message_ru: str, extra: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message_ru = message_ru
        self.extra: Mapping[str, Any] = dict(extra or {})

    @property
    def conflict(self) -> bool:
        return self.code in self.CONFLICTS
