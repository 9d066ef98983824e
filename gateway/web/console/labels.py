"""Russian words for the codes the console shows (CIS Art. 19; SC Art. 11).

Codes stay codes in the store and the API; only the console turns them into Russian. A code
without a label is shown as it is, so a new state or field never breaks a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.exchange.service import Role
from gateway.model.profiles import PROFILES

ROLE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        Role.OPERATOR: "Оператор",
        Role.CONFIDENTIAL_READER: "Допуск к конфиденциальным документам",
        Role.ADMINISTRATOR: "Администратор",
        Role.AUDITOR: "Аудитор",
    }
)

STATE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "idle": "Не начата",
        "submitted": "Направлен, квитанция не получена",
        "in-progress": "На исполнении",
        "awaiting-additional-info": "Ожидаются дополнительные сведения",
        "postponed": "Исполнение отложено",
        "confidentiality-hold": "Приостановлено: конфиденциальность",
        "awaiting-authenticity": "Ожидается подтверждение подлинности",
        "answered": "Исполнен",
        "refused": "Отказано в исполнении",
        "withdrawn": "Отозван",
        "rejected": "Отклонён шлюзом получателя",
        "information-sent": "Информация направлена",
        "information-delivered": "Информация доставлена",
        "inquiry-sent": "Запрос о мерах защиты направлен",
        "inquiry-open": "Запрос о мерах защиты получен",
        "inquiry-answered": "Запрос о мерах защиты исполнен",
    }
)

DIRECTION_LABELS: Mapping[str, str] = MappingProxyType({"in": "Получен", "out": "Отправлен"})

KEY_STATUS_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "active": "действует",
        "pending": "ожидает перехода",
        "superseded": "заменён",
        "revoked": "отозван",
        "retired": "выведен из работы",
        "destroyed": "уничтожен",
    }
)
"""A key generation's status (``gateway keys list``), as the keys page shows it."""

DELIVERY_LABELS: Mapping[str, str] = MappingProxyType(
    {"pending": "Ожидает доставки", "delivered": "Доставлен", "failed": "Не доставлен"}
)

VERIFICATION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "TOTAL_PASSED": "Подписи действительны",
        "PASSED": "Подписи действительны",
        "INDETERMINATE": "Проверка подписей не завершена",
        "TOTAL_FAILED": "Подписи недействительны",
        "FAILED": "Подписи недействительны",
    }
)


def verification_label(indication: str | None, direction: str) -> str:
    """What the console says of a message's signatures: the indication recorded at receipt
    (or at the last re-verification); a document this node signed has none of its own."""
    if indication is None:
        return "Подписан этим узлом" if direction == "out" else "Проверка не записана"
    return label(VERIFICATION_LABELS, indication)


VERIFICATION_CLASSES: Mapping[str, str] = MappingProxyType(
    {
        "TOTAL_PASSED": "ok",
        "PASSED": "ok",
        "INDETERMINATE": "warn",
        "TOTAL_FAILED": "bad",
        "FAILED": "bad",
    }
)

AGREEMENT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "cis-enforcement": "Соглашение СНГ о принудительном исполнении",
        "ru-kz-supreme-courts": "Соглашение Верховных Судов РФ и РК",
    }
)

KIND_LABELS: Mapping[str, str] = MappingProxyType(
    {name: kind.title_ru for profile in PROFILES.values() for name, kind in profile.kinds.items()}
)
"""Kind titles; both agreements name the shared kinds the same or nearly so."""

FIELD_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "AccountNumber": "Номер счёта",
        "ActualAddress": "Фактический адрес",
        "AdditionalInfoAnswer": "Дополнительные сведения",
        "AdditionalInfoRequest": "Запрос дополнительных сведений",
        "Address": "Адрес",
        "Agreement": "Соглашение",
        "Amount": "Сумма",
        "Answer": "Ответ",
        "Assets": "Имущество",
        "Attachment": "Вложение",
        "Attachments": "Вложения",
        "AuthenticityConfirmation": "Подтверждение подлинности",
        "AuthenticityConfirmationRequest": "Запрос подтверждения подлинности",
        "Authority": "Орган",
        "Balance": "Остаток",
        "Bank": "Банк",
        "BankAccount": "Банковский счёт",
        "Basis": "Основание",
        "BirthDate": "Дата рождения",
        "BirthPlace": "Место рождения",
        "CadastralNumber": "Кадастровый номер",
        "Circumstances": "Обстоятельства",
        "Code": "Код",
        "Comment": "Комментарий",
        "Company": "Организация",
        "Complete": "Исполнен полностью",
        "Condition": "Условие",
        "Conditions": "Условия",
        "Confidential": "Конфиденциально",
        "Confirmed": "Подтверждено",
        "ConfirmedBy": "Кем подтверждено",
        "ConsultationsHeld": "Консультации проведены",
        "Content": "Содержимое",
        "ConversationId": "Идентификатор переписки",
        "Created": "Создан",
        "Creditor": "Взыскатель",
        "Currency": "Валюта",
        "Date": "Дата",
        "Debtor": "Должник",
        "Decision": "Решение",
        "Description": "Описание",
        "Details": "Подробности",
        "DisclosureProcedure": "Порядок раскрытия",
        "Document": "Документ",
        "Documents": "Документы",
        "DoubtAbout": "Сомнения в отношении",
        "Employer": "Работодатель",
        "EmploymentAndIncome": "Место работы и доходы",
        "EnforcementDocument": "Исполнительный документ",
        "ExpectedBy": "Ожидается к",
        "ExpectedDate": "Ожидаемая дата",
        "Explanations": "Разъяснения",
        "Extent": "Объём отказа",
        "FactualCircumstances": "Фактические обстоятельства",
        "FileName": "Имя файла",
        "From": "С",
        "Ground": "Основание отказа",
        "Id": "Идентификатор",
        "Identifier": "Идентификатор",
        "InReplyTo": "В ответ на",
        "Income": "Доходы",
        "Individual": "Физическое лицо",
        "IndividualEntrepreneur": "Индивидуальный предприниматель",
        "Information": "Информация",
        "IssuedAt": "Дата выдачи",
        "Issuer": "Выдавший орган",
        "IssuerKind": "Вид выдавшего органа",
        "Item": "Позиция",
        "Kind": "Вид",
        "Language": "Язык",
        "LegalBasis": "Правовое основание",
        "LegalEntity": "Юридическое лицо",
        "LegalInterest": "Правовой интерес",
        "Location": "Местонахождение",
        "Measures": "Меры",
        "MediaType": "Тип файла",
        "MessageId": "Идентификатор сообщения",
        "Name": "Наименование",
        "Names": "Имена",
        "Note": "Примечание",
        "Number": "Номер",
        "Obstacle": "Препятствие",
        "Official": "Должностное лицо",
        "Opened": "Возбуждено",
        "OperativePart": "Резолютивная часть",
        "Original": "Оригинал",
        "OriginalLanguage": "Язык оригинала",
        "Other": "Иное",
        "OtherAsset": "Иное имущество",
        "OtherIdentifier": "Иной идентификатор",
        "OtherInformation": "Иные сведения",
        "Party": "Сторона",
        "Patronymic": "Отчество",
        "Period": "Период",
        "PlaceOfStudy": "Место учёбы",
        "Position": "Должность",
        "Postponement": "Отложение исполнения",
        "PostponementDecision": "Решение по условиям исполнения",
        "Procedure": "Порядок",
        "Proceeding": "Исполнительное производство",
        "Proceedings": "Исполнительные производства",
        "Property": "Имущество",
        "PropertyForSale": "Имущество для реализации",
        "PropertyLocation": "Местонахождение имущества",
        "ProvidedInMessageId": "Предоставлено в сообщении",
        "Purpose": "Цель",
        "Question": "Вопрос",
        "Questions": "Вопросы",
        "RealEstate": "Недвижимое имущество",
        "Reason": "Причина",
        "ReasonEn": "Причина (англ.)",
        "ReasonRu": "Причина",
        "Reasons": "Причины",
        "Received": "Получено",
        "ReceivedMessageId": "Полученное сообщение",
        "Recipient": "Получатель",
        "Recovered": "Взыскано",
        "Refusal": "Отказ в исполнении запроса",
        "RefusedPart": "Часть запроса, в исполнении которой отказано",
        "RegisteredAddress": "Адрес регистрации",
        "RegistrationNumber": "Регистрационный номер",
        "RegistrationPlate": "Государственный регистрационный знак",
        "RejectedMessageId": "Отклонённое сообщение",
        "Request": "Запрос",
        "RequestedAuthority": "Запрашиваемый орган",
        "RequestedDeadline": "Запрошенный срок",
        "RequestedParty": "Запрашиваемая Сторона",
        "RequestingAuthority": "Запрашивающий орган",
        "RequestingParty": "Запрашивающая Сторона",
        "Requirement": "Требование",
        "Residence": "Место жительства",
        "Response": "Ответ на запрос",
        "Result": "Результат",
        "Results": "Результаты",
        "RetentionPeriod": "Срок хранения",
        "ReturnedDocuments": "Возвращаемые документы",
        "Right": "Право",
        "Role": "Роль",
        "SeizedProperty": "Арестованное имущество",
        "Sender": "Отправитель",
        "Share": "Доля",
        "Sha256": "Контрольная сумма SHA-256",
        "SignedBy": "Подписано",
        "Size": "Размер, байт",
        "Source": "Источник",
        "Stage": "Стадия",
        "State": "Состояние",
        "Statement": "Заявление",
        "Subject": "Предмет",
        "Subjects": "Предмет запроса",
        "Summary": "Краткое содержание",
        "Surname": "Фамилия",
        "Target": "Объект",
        "Term": "Срок",
        "Text": "Текст",
        "ThirdParty": "Третье лицо",
        "Title": "Название",
        "To": "По",
        "Topic": "Тема",
        "Translation": "Перевод",
        "UnsolicitedInformation": "Информация без запроса",
        "UntilRemoved": "До устранения обстоятельств",
        "Urgency": "Срочность",
        "Value": "Значение",
        "Vehicle": "Транспортное средство",
        "Vin": "VIN",
        "Withdrawal": "Отзыв запроса",
        "Workplace": "Место работы",
    }
)


def label(table: Mapping[str, str], code: object) -> str:
    """The Russian label of ``code`` in ``table``, or the code itself."""
    text = str(code)
    return table.get(text, text)


_AGREEMENT_OF_ARTICLE = (
    ("CIS Art. ", "Соглашения СНГ"),
    ("SC Art. ", "Соглашения Верховных Судов"),
)


def article_ru(article: str) -> str:
    """``CIS Art. 13, 25`` -> ``ст. 13, 25 Соглашения СНГ``; other text as it is."""
    for prefix, agreement in _AGREEMENT_OF_ARTICLE:
        if article.startswith(prefix):
            return f"ст. {article[len(prefix) :]} {agreement}"
    return article
