"""Content rules: what the XSD cannot say about a document.

Run on a parsed, schema-valid (and, for received documents, verified) envelope together with
its :class:`~gateway.model.envelope.Header`. Each rule returns
:class:`~gateway.model.problems.Problem` objects with a stable ``RULE_*`` code, the field, the
article it comes from, a Russian and an English message and what to do. The rules are pure:
no I/O, no clock.

Rules (codes are stable, docs/documents.md lists them):

* ``RULE_LANGUAGE`` — the document is in Russian (CIS Art. 19; SC Art. 11).
* ``RULE_KIND_UNKNOWN`` — ``<env:Kind>`` is a kind of the header's agreement.
* ``RULE_BODY_NAMESPACE`` — the body's element is in the header agreement's namespace.
* ``RULE_KIND_MISMATCH`` — the body's element is named as ``<env:Kind>``.
* ``RULE_SENDER_IS_RECIPIENT`` — a body does not write to itself.
* ``RULE_INCOME_PERIOD_REVERSED`` / ``RULE_INCOME_PERIOD_TOO_LONG`` — CIS Art. 7: From ≤ To,
  at most 3 years.
* ``RULE_PROPERTY_NOT_IDENTIFIED`` — CIS Art. 8: a request for the location of property names
  the property and data identifying it.
* ``RULE_QUESTIONS_MISSING`` — CIS Art. 11.2: a request for explanations lists its questions.
* ``RULE_FILE_NOT_LISTED`` — a file a body names (a court document and its translation, the
  documents a refusal returns) is one the signed header lists beside the XML.
* ``RULE_TRANSLATION_MISSING`` — SC Art. 5.1: a document not originally in Russian comes with
  its Russian translation.
* ``RULE_ATTACHMENT_NAME_REPEATED`` / ``RULE_ATTACHMENT_TRANSLATION_MISSING`` /
  ``RULE_ATTACHMENT_TRANSLATION_TARGET`` — CIS Art. 19; SC Art. 11: a file beside the XML in
  another language travels with its Russian translation, named by ``TranslationOf``.
* ``RULE_ORAL_REQUEST_DATES`` — SC Art. 5.1 para. 2: a written confirmation of an oral request
  comes after it: the oral request's date ≤ the day confirmation was asked ≤ the confirmation's
  own creation date.
* ``RULE_COST_COVERAGE_TERMS`` — SC Art. 9: a consultation answer or record that departs from
  "each party bears its own costs" (the requesting party covers them, or they are shared) states
  the terms.

:data:`CONTENT_RULES` is the table of them all; docs/documents.md is checked against it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from lxml import etree

from gateway.model.envelope import Header
from gateway.model.problems import Problem
from gateway.model.profiles import (
    CIS_ENFORCEMENT,
    COMMON_NAMESPACE,
    ENVELOPE_NAMESPACE,
    PROFILES,
    RU_KZ_SUPREME_COURTS,
    AgreementProfile,
)

INCOME_PERIOD_MAX_YEARS = 3
"""CIS Art. 7 para. 2: income information 'за период, указанный в запросе, но не более чем за
3 года'."""


@dataclass(frozen=True, slots=True)
class ContentRule:
    """One row of docs/documents.md's table of content rules."""

    code: str
    article: str
    rule: str


CONTENT_RULES: tuple[ContentRule, ...] = (
    ContentRule("RULE_LANGUAGE", "CIS Art. 19; SC Art. 11", "`Language` is `ru`"),
    ContentRule("RULE_KIND_UNKNOWN", "", "`Kind` is a kind of the header's agreement"),
    ContentRule(
        "RULE_BODY_NAMESPACE", "", "the body's element is in the header agreement's namespace"
    ),
    ContentRule("RULE_KIND_MISMATCH", "", "the body's element is named as `Kind`"),
    ContentRule(
        "RULE_SENDER_IS_RECIPIENT",
        "CIS Art. 1; SC Art. 5.1",
        "sender and recipient are different bodies",
    ),
    ContentRule("RULE_INCOME_PERIOD_REVERSED", "CIS Art. 7", "income period `From` ≤ `To`"),
    ContentRule(
        "RULE_INCOME_PERIOD_TOO_LONG",
        "CIS Art. 7",
        "income period at most 3 years (from 2023-11-01 the last day is 2026-10-31)",
    ),
    ContentRule(
        "RULE_PROPERTY_NOT_IDENTIFIED",
        "CIS Art. 8",
        "a location-of-property subject names each property with a description or identifiers",
    ),
    ContentRule(
        "RULE_QUESTIONS_MISSING",
        "CIS Art. 11.2",
        "an explanations subject lists at least one question",
    ),
    ContentRule(
        "RULE_FILE_NOT_LISTED",
        "",
        "a file the body names (`Original`, `Translation`, `ReturnedDocuments/FileName`) is "
        "listed beside the XML in the signed header (`env:Attachment/Name`)",
    ),
    ContentRule(
        "RULE_ATTACHMENT_NAME_REPEATED",
        "CIS Art. 19; SC Art. 11",
        "the files beside the XML have different `Name`s (`TranslationOf` names one)",
    ),
    ContentRule(
        "RULE_ATTACHMENT_TRANSLATION_MISSING",
        "CIS Art. 19; SC Art. 11",
        "a file beside the XML whose `Language` is not `ru` has a Russian translation in the "
        "list (a file whose `TranslationOf` is its `Name`), unless under CIS it is a register "
        "extract (`RegisterExtract`, CIS Art. 5 para. 3)",
    ),
    ContentRule(
        "RULE_ATTACHMENT_TRANSLATION_TARGET",
        "CIS Art. 19; SC Art. 11",
        "`TranslationOf` names another file of the list, and the translation is in Russian",
    ),
    ContentRule(
        "RULE_TRANSLATION_MISSING",
        "SC Art. 5.1",
        "a document not originally in Russian carries its Russian translation",
    ),
    ContentRule(
        "RULE_ORAL_REQUEST_DATES",
        "SC Art. 5.1 para. 2",
        "a request confirming an oral one (`ConfirmsOralRequest`): oral request ≤ confirmation "
        "asked ≤ the confirmation's `Created` date",
    ),
    ContentRule(
        "RULE_COST_COVERAGE_TERMS",
        "SC Art. 9",
        "a consultation answer or record whose `CostCoverage` is `requesting-party` or `shared` "
        "states `CoverageTerms`",
    ),
)

TRUE = frozenset({"true", "1"})
"""xs:boolean's two spellings of true."""

_C = f"{{{COMMON_NAMESPACE}}}"
_CIS = f"{{{CIS_ENFORCEMENT.namespace}}}"
_SC = f"{{{RU_KZ_SUPREME_COURTS.namespace}}}"
_ENV = f"{{{ENVELOPE_NAMESPACE}}}"


def check_content(root: etree._Element, header: Header) -> tuple[Problem, ...]:
    """All content rules for one envelope; empty when the document passes them all."""
    profile = PROFILES.get(header.agreement)
    if profile is None:  # the schema's enumeration prevents this; a caller skipped validation
        raise ValueError(f"unknown agreement {header.agreement!r}: validate the document first")
    problems = [*check_language(header, profile), *check_parties(header, profile)]
    body_element = _body_element(root)
    kind_problems = check_kind(body_element, header, profile)
    problems += kind_problems
    if kind_problems:
        # The body is not what the header says: the kind-specific rules would read the wrong thing.
        return tuple(problems)
    for rule in _KIND_RULES.get((profile.id, header.kind), ()):
        problems += rule(body_element)
    listed = root.findall(f"{_ENV}Header/{_ENV}Attachments/{_ENV}Attachment")
    problems += check_named_files(body_element, listed)
    problems += check_attachment_languages(listed, profile)
    return tuple(problems)


# ----- envelope-level rules -----


def check_language(header: Header, profile: AgreementProfile) -> list[Problem]:
    """The agreements' working language is Russian (CIS Art. 19; SC Art. 11)."""
    if header.language == profile.language:
        return []
    return [
        Problem(
            code="RULE_LANGUAGE",
            path="/Envelope/Header/Language",
            article=profile.language_article,
            message_ru=(
                f"Язык документа — «{header.language}», а соглашение требует русский язык "
                f"({profile.language})."
            ),
            message_en=f"language {header.language!r}: the agreement requires {profile.language!r}",
            remedy_ru="Составьте документ на русском языке и укажите Language = ru.",
        )
    ]


def check_parties(header: Header, profile: AgreementProfile) -> list[Problem]:
    """Sender and recipient are two different bodies (requesting ≠ requested party)."""
    if header.sender != header.recipient:
        return []
    article = "CIS Art. 1" if profile.id == CIS_ENFORCEMENT.id else "SC Art. 5.1"
    return [
        Problem(
            code="RULE_SENDER_IS_RECIPIENT",
            path="/Envelope/Header/Recipient",
            article=article,
            message_ru="Отправитель и получатель совпадают: запрашивающая и запрашиваемая "
            "Стороны должны быть разными органами.",
            message_en="sender and recipient are the same body",
            remedy_ru="Укажите в Recipient идентификатор органа другой Стороны.",
        )
    ]


def check_kind(
    body_element: etree._Element, header: Header, profile: AgreementProfile
) -> list[Problem]:
    """The header's kind exists in the profile, and the body's element is that kind."""
    problems: list[Problem] = []
    qname = etree.QName(body_element)
    if header.kind not in profile.kinds:
        problems.append(
            Problem(
                code="RULE_KIND_UNKNOWN",
                path="/Envelope/Header/Kind",
                message_ru=(
                    f"Вида сообщения «{header.kind}» нет в соглашении {profile.id}; допустимы: "
                    f"{', '.join(profile.kinds)}."
                ),
                message_en=f"{header.kind!r} is not a message kind of {profile.id}",
                remedy_ru="Укажите вид сообщения из перечня соглашения.",
            )
        )
    if qname.namespace != profile.namespace:
        problems.append(
            Problem(
                code="RULE_BODY_NAMESPACE",
                path=f"/Envelope/Body/{qname.localname}",
                message_ru=(
                    f"Содержимое Body относится к другому соглашению (пространство имён "
                    f"{qname.namespace}), а в заголовке указано {profile.id}."
                ),
                message_en=(
                    f"body element is in {qname.namespace}, header agreement is {profile.id} "
                    f"({profile.namespace})"
                ),
                remedy_ru="Согласуйте Agreement в заголовке с пространством имён содержимого.",
            )
        )
    if qname.localname != header.kind:
        problems.append(
            Problem(
                code="RULE_KIND_MISMATCH",
                path=f"/Envelope/Body/{qname.localname}",
                message_ru=(
                    f"В заголовке указан вид «{header.kind}», а в Body — «{qname.localname}»."
                ),
                message_en=f"header kind {header.kind!r} but body element {qname.localname!r}",
                remedy_ru="Согласуйте Kind в заголовке с элементом в Body.",
            )
        )
    return problems


# ----- CIS request rules -----


def check_income_periods(request: etree._Element) -> list[Problem]:
    """CIS Art. 7: the income period runs forward and covers at most three years."""
    problems: list[Problem] = []
    for subject in request.iterfind(f"{_CIS}Subjects/{_CIS}Subject/{_CIS}EmploymentAndIncome"):
        period = subject.find(f"{_CIS}Period")
        if period is None:
            continue
        start = date.fromisoformat(_text(period.find(f"{_C}From")).strip())
        end = date.fromisoformat(_text(period.find(f"{_C}To")).strip())
        if start > end:
            problems.append(
                Problem(
                    code="RULE_INCOME_PERIOD_REVERSED",
                    path=_path(period),
                    article="CIS Art. 7",
                    message_ru=f"Начало периода ({start}) позже его окончания ({end}).",
                    message_en=f"period starts {start}, after its end {end}",
                    remedy_ru="Поменяйте From и To местами или исправьте даты.",
                )
            )
        elif end >= _years_after(start, INCOME_PERIOD_MAX_YEARS):
            last = _years_after(start, INCOME_PERIOD_MAX_YEARS) - timedelta(days=1)
            problems.append(
                Problem(
                    code="RULE_INCOME_PERIOD_TOO_LONG",
                    path=_path(period),
                    article="CIS Art. 7",
                    message_ru=(
                        f"Сведения о доходах запрашиваются не более чем за "
                        f"{INCOME_PERIOD_MAX_YEARS} года; период {start} — {end} длиннее."
                    ),
                    message_en=(
                        f"income period {start}..{end} exceeds {INCOME_PERIOD_MAX_YEARS} years"
                    ),
                    remedy_ru=f"Сократите период: при начале {start} окончание не позже {last}.",
                )
            )
    return problems


def check_property_identified(request: etree._Element) -> list[Problem]:
    """CIS Art. 8 para. 2: a location-of-property request identifies the property."""
    problems: list[Problem] = []
    for subject in request.iterfind(f"{_CIS}Subjects/{_CIS}Subject/{_CIS}Location"):
        if _text(subject.find(f"{_CIS}Target")) != "property":
            continue
        properties = subject.findall(f"{_CIS}Property")
        unidentified = [
            p
            for p in properties
            if p.find(f"{_CIS}Description") is None and p.find(f"{_CIS}Identifier") is None
        ]
        if properties and not unidentified:
            continue
        where = _path(unidentified[0]) if unidentified else _path(subject) + "/Property"
        problems.append(
            Problem(
                code="RULE_PROPERTY_NOT_IDENTIFIED",
                path=where,
                article="CIS Art. 8",
                message_ru="В запросе о местонахождении имущества не указано конкретное "
                "имущество и данные, позволяющие его идентифицировать.",
                message_en="a property-location request must identify the property",
                remedy_ru="Добавьте Property с описанием (Description) и/или идентификаторами "
                "(Identifier: госномер, VIN, кадастровый номер…).",
            )
        )
    return problems


def check_questions(request: etree._Element) -> list[Problem]:
    """CIS Art. 11.2: a request for explanations lists the questions to put to the party."""
    problems: list[Problem] = []
    for subject in request.iterfind(f"{_CIS}Subjects/{_CIS}Subject/{_CIS}Explanations"):
        questions = subject.find(f"{_CIS}Questions")
        if questions is not None and questions.find(f"{_CIS}Question") is not None:
            continue
        problems.append(
            Problem(
                code="RULE_QUESTIONS_MISSING",
                path=_path(subject) + "/Questions",
                article="CIS Art. 11.2",
                message_ru="Запрос о получении разъяснений от стороны исполнительного "
                "производства должен содержать перечень вопросов.",
                message_en="an explanations request must list at least one question",
                remedy_ru="Добавьте хотя бы один элемент Question в Questions.",
            )
        )
    return problems


# ----- SC rules -----


def check_translations(request: etree._Element) -> list[Problem]:
    """SC Art. 5.1: documents not originally in Russian are translated by the requesting party."""
    problems: list[Problem] = []
    for document in request.iterfind(f"{_SC}Documents/{_SC}Document"):
        language = _text(document.find(f"{_SC}OriginalLanguage"))
        if language == "ru" or document.find(f"{_SC}Translation") is not None:
            continue
        problems.append(
            Problem(
                code="RULE_TRANSLATION_MISSING",
                path=_path(document) + "/Translation",
                article="SC Art. 5.1",
                message_ru=f"Документ составлен не на русском языке ({language}), а перевода на "
                "русский язык нет.",
                message_en=f"document in {language!r} has no Russian translation",
                remedy_ru="Приложите перевод на русский язык (Translation).",
            )
        )
    return problems


def check_oral_request(request: etree._Element) -> list[Problem]:
    """SC Art. 5.1 para. 2: an oral request, then its written confirmation "по просьбе
    запрашиваемой Стороны": the dates must run in that order. The written date is the
    envelope's ``Created`` as its sender wrote it (its own offset)."""
    oral = request.find(f"{_SC}ConfirmsOralRequest")
    if oral is None:
        return []
    made_on = date.fromisoformat(_text(oral.find(f"{_SC}MadeOn")).strip())
    asked_on = date.fromisoformat(_text(oral.find(f"{_SC}ConfirmationAskedOn")).strip())
    created = request.getroottree().getroot().find(f"{_ENV}Header/{_ENV}Created")
    written_on = datetime.fromisoformat(_text(created).strip().replace("Z", "+00:00")).date()
    if made_on <= asked_on <= written_on:
        return []
    late_field = "MadeOn" if made_on > asked_on else "ConfirmationAskedOn"
    return [
        Problem(
            code="RULE_ORAL_REQUEST_DATES",
            path=_path(oral) + "/" + late_field,
            article="SC Art. 5.1",
            message_ru=(
                f"Даты не по порядку: устный запрос {made_on.isoformat()}, просьба о письменном "
                f"подтверждении {asked_on.isoformat()}, подтверждение составлено "
                f"{written_on.isoformat()}."
            ),
            message_en=(
                f"oral request {made_on}, confirmation asked {asked_on}, written {written_on}: "
                "each must be on or before the next"
            ),
            remedy_ru=(
                "Укажите дату устного запроса (MadeOn) и дату просьбы о подтверждении "
                "(ConfirmationAskedOn) не позднее даты составления подтверждения."
            ),
        )
    ]


COVERAGE_NEEDING_TERMS = frozenset({"requesting-party", "shared"})
"""SC Art. 9.1: each party bears its own costs "если Стороны не договорятся об ином в каждом
конкретном случае"; an agreement otherwise must say what was agreed (Art. 9.2 "порядка покрытия
расходов")."""


def check_cost_coverage(answer: etree._Element) -> list[Problem]:
    """SC Art. 9: a departure from each party bearing its own costs states its terms (in a
    ``ConsultationAnswer`` or a ``ConsultationRecord``)."""
    coverage = _text(answer.find(f"{_SC}CostCoverage")).strip()
    if coverage not in COVERAGE_NEEDING_TERMS or _text(answer.find(f"{_SC}CoverageTerms")).strip():
        return []
    return [
        Problem(
            code="RULE_COST_COVERAGE_TERMS",
            path=_path(answer) + "/CoverageTerms",
            article="SC Art. 9",
            message_ru=(
                f"Порядок покрытия расходов «{coverage}» отличается от общего правила ст. 9.1 "
                "(каждая Сторона несёт свои расходы), но его условия не указаны."
            ),
            message_en=f"cost coverage {coverage!r} departs from Art. 9.1 but states no terms",
            remedy_ru=(
                "Укажите в CoverageTerms, какие расходы и в какой доле покрывает каждая Сторона."
            ),
        )
    ]


# ----- attachments (both profiles) -----


def check_named_files(body_element: etree._Element, listed: list[etree._Element]) -> list[Problem]:
    """Every file a body names is one the signed header lists beside the XML: a name alone
    carries nothing, so a court document, its translation or a returned document that does not
    travel with the document is no document at all."""
    names = {_text(item.find(f"{_ENV}Name")) for item in listed}
    problems: list[Problem] = []
    for named in _named_files(body_element):
        if _text(named) in names:
            continue
        problems.append(
            Problem(
                code="RULE_FILE_NOT_LISTED",
                path=_path(named),
                message_ru=f"Документ ссылается на файл «{_text(named)}», но среди файлов, "
                "переданных рядом с ним, такого нет.",
                message_en=f"the body names {_text(named)!r}, which no file beside the XML is",
                remedy_ru="Загрузите файл (POST /api/v1/attachments) под этим именем и укажите "
                "его в attachments отправки, или исправьте имя (docs/attachments.md).",
            )
        )
    return problems


def _named_files(body_element: etree._Element) -> Iterator[etree._Element]:
    for path in FILE_REFERENCES:
        yield from body_element.iterfind(path)


FILE_REFERENCES = (
    f"{_SC}Documents/{_SC}Document/{_SC}Original",
    f"{_SC}Documents/{_SC}Document/{_SC}Translation",
    f"{_CIS}ReturnedDocuments/{_C}FileName",
)
"""Where a body names a file beside the XML (relative to the kind's element)."""


def check_attachment_languages(
    listed: list[etree._Element], profile: AgreementProfile
) -> list[Problem]:
    """A file beside the XML (the signed header's list, docs/attachments.md) in another
    language travels with its Russian translation (CIS Art. 19; SC Art. 11): another file of
    the list, in Russian, whose ``TranslationOf`` is its ``Name``. A missing ``Language`` means
    the agreement's language. Under CIS, extracts from registers and databases and documents
    confirming rights travel without translation (Art. 5 para. 3): ``RegisterExtract`` true."""
    return _check_attachment_list(listed, profile) if listed else []


def _check_attachment_list(
    attachments: list[etree._Element], profile: AgreementProfile
) -> list[Problem]:
    def field(attachment: etree._Element, name: str) -> str | None:
        node = attachment.find(f"{_ENV}{name}")
        return None if node is None else _text(node)

    def problem(
        code: str, attachment: etree._Element, name: str, ru: str, en: str, remedy: str
    ) -> Problem:
        return Problem(
            code=code,
            path=f"{_path(attachment)}/{name}",
            article=profile.language_article,
            message_ru=ru,
            message_en=en,
            remedy_ru=remedy,
        )

    problems: list[Problem] = []
    by_name: dict[str, etree._Element] = {}
    for attachment in attachments:
        name = field(attachment, "Name") or ""
        if name in by_name:
            problems.append(
                problem(
                    "RULE_ATTACHMENT_NAME_REPEATED",
                    attachment,
                    "Name",
                    f"Два вложения названы одинаково («{name}»): перевод не сможет указать, "
                    "к какому из них он относится.",
                    "two files beside the XML share a Name",
                    "Дайте файлам разные имена (name при загрузке).",
                )
            )
        by_name.setdefault(name, attachment)
    translated: set[str] = set()
    for attachment in attachments:
        target = field(attachment, "TranslationOf")
        if target is None:
            continue
        language = field(attachment, "Language") or profile.language
        original = by_name.get(target)
        if original is None or original is attachment or language != profile.language:
            problems.append(
                problem(
                    "RULE_ATTACHMENT_TRANSLATION_TARGET",
                    attachment,
                    "TranslationOf",
                    "Вложение объявлено переводом, но TranslationOf не называет другое вложение "
                    "этого документа или сам перевод не на русском языке.",
                    "TranslationOf names no other attachment of the list, or the translation is "
                    "not in Russian",
                    "Укажите в translation_of (attachments отправки) имя переведённого файла; "
                    "язык перевода — ru.",
                )
            )
            continue
        translated.add(target)
    for attachment in attachments:
        language = field(attachment, "Language") or profile.language
        name = field(attachment, "Name") or ""
        if language == profile.language or name in translated:
            continue
        if profile.id == CIS_ENFORCEMENT.id and field(attachment, "RegisterExtract") in TRUE:
            continue  # CIS Art. 5 para. 3: register extracts travel without translation
        problems.append(
            problem(
                "RULE_ATTACHMENT_TRANSLATION_MISSING",
                attachment,
                "Language",
                f"Вложение «{name}» составлено не на русском языке ({language}), а его перевода "
                "на русский язык среди вложений нет.",
                f"attachment in {language!r} has no Russian translation among the attachments",
                "Приложите перевод на русский язык отдельным файлом с translation_of = имени "
                "файла оригинала (attachments отправки), или отметьте выписку из реестра "
                "register_extract (только по Соглашению СНГ, ст. 5 п. 3).",
            )
        )
    return problems


_KIND_RULES: dict[tuple[str, str], tuple[Callable[[etree._Element], list[Problem]], ...]] = {
    (CIS_ENFORCEMENT.id, "Request"): (
        check_income_periods,
        check_property_identified,
        check_questions,
    ),
    (RU_KZ_SUPREME_COURTS.id, "Request"): (check_translations, check_oral_request),
    (RU_KZ_SUPREME_COURTS.id, "ConsultationAnswer"): (check_cost_coverage,),
    (RU_KZ_SUPREME_COURTS.id, "ConsultationRecord"): (check_cost_coverage,),
}


# ----- helpers -----


def _body_element(root: etree._Element) -> etree._Element:
    body = root.find(f"{_ENV}Body")
    children = [] if body is None else [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise ValueError("env:Body must hold exactly one element: validate the document first")
    return children[0]


def _text(node: etree._Element | None) -> str:
    return "" if node is None or node.text is None else node.text


def _years_after(start: date, years: int) -> date:
    """The same calendar day ``years`` later; 29 February moves to 1 March."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return date(start.year + years, 3, 1)


def _ancestors(node: etree._Element) -> Iterator[etree._Element]:
    while node is not None:
        yield node
        node = node.getparent()


def _path(node: etree._Element) -> str:
    """``/Envelope/Body/Request/Subjects/Location[2]`` (as gateway.xml.paths writes it).

    It walks every ancestor's siblings: build it for a problem being reported, not ahead."""
    parts = []
    for item in _ancestors(node):
        name = etree.QName(item).localname
        parent = item.getparent()
        if parent is not None:
            same = list(parent.iterchildren(item.tag))
            if len(same) > 1:
                name = f"{name}[{same.index(item) + 1}]"
        parts.append(name)
    return "/" + "/".join(reversed(parts))
