"""Russian words for the codes the console shows (CIS Art. 19; SC Art. 11).

Codes stay codes in the store and the API; only the console turns them into Russian. A code
without a label is shown as it is, so a new state or field never breaks a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.exchange.service import Role
from gateway.model.bodies import DEMO_BODIES
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


KEY_ROLE_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "seal": "Электронная печать органа",
        "official": "Подпись уполномоченного лица",
        "officials-ca": "Удостоверяющий центр уполномоченных лиц",
        "tls": "Защищённое соединение (TLS)",
        "encryption": "Шифрование документов",
        "kek": "Ключ шифрования хранимых данных",
    }
)
"""Key roles (``gateway.crypto.keys.keystore.KeyRole``) and certificate roles of the directory."""

RESERVATION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "limits-article": "оговорка об ограничении применения статьи",
        "non-application": "заявление о неприменении",
    }
)

RETENTION_EVENT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "received": "получения документа",
        "conversation-closed": "завершения переписки",
        "proceeding-closed": "окончания исполнительного производства",
    }
)

_PERIOD_UNITS = {
    "days": ("день", "дня", "дней"),
    "months": ("месяц", "месяца", "месяцев"),
    "years": ("год", "года", "лет"),
}


def period_ru(amount: int, unit: str) -> str:
    """``5 years`` -> «5 лет», ``1 month`` -> «1 месяц» (Russian plural forms)."""
    forms = _PERIOD_UNITS.get(unit)
    if forms is None:
        return f"{amount} {unit}"
    if amount % 10 == 1 and amount % 100 != 11:
        word = forms[0]
    elif 2 <= amount % 10 <= 4 and not 12 <= amount % 100 <= 14:
        word = forms[1]
    else:
        word = forms[2]
    return f"{amount} {word}"


def agreement_names(codes: object) -> str:
    """Agreements' Russian names, comma-separated."""
    return ", ".join(label(AGREEMENT_LABELS, c) for c in sorted(codes))  # type: ignore[call-overload]


def kind_names(codes: object) -> str:
    """Kinds' Russian titles, comma-separated."""
    return ", ".join(label(KIND_LABELS, c) for c in sorted(codes))  # type: ignore[call-overload]


AUDIT_EVENT_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "access.denied": "Отказ в доступе",
        "answer.late": "Ответ позже срока исполнения без уведомления о задержке",
        "attachment.discarded": "Загруженный файл удалён без отправки",
        "attachment.expired": "Неотправленный файл удалён по истечении суток",
        "attachment.uploaded": "Загружен файл вложения",
        "attachment.verified": "Проверка подписей PDF-вложения",
        "audit.checkpoint": "Контрольная точка журнала",
        "audit.exported": "Выгрузка журнала",
        "audit.purposes.read": "Расшифрованы цели ознакомления",
        "audit.verified": "Проверка целостности журнала",
        "console.account_locked": "Учётная запись временно заблокирована",
        "console.audit_verified": "Проверка целостности журнала (до audit.verified)",
        "console.csrf_refused": "Отклонён запрос без действительного токена формы",
        "console.purpose_refused": "Отказ: цель ознакомления не может быть указана",
        "console.purpose_stated": "Указана цель ознакомления",
        "console.sign_in_failed": "Неудачная попытка входа",
        "console.signed_in": "Вход в консоль",
        "console.signed_out": "Выход из консоли",
        "conversation.read": "Просмотр переписки",
        "conversations.reindexed": "Перестроен поисковый указатель переписки",
        "deadline.answered-late": "Уведомление об ответе позже срока",
        "deadline.paused": "Течение срока приостановлено",
        "deadline.reminder": "Напоминание о сроке",
        "deadline.resumed": "Течение срока возобновлено",
        "deadline.started": "Начато течение срока",
        "deadline.stopped": "Течение срока прекращено",
        "delivery.dead-letter": "Доставка прекращена",
        "delivery.failed": "Неудачная попытка доставки",
        "directory.imported": "Загружен справочник органов",
        "disclosure.records.read": "Просмотр записей о раскрытии",
        "disclosure.refused": "Отказ в раскрытии",
        "document.disclosed": "Документ раскрыт",
        "document.read": "Просмотр документа",
        "document.reverified": "Повторная проверка подписей",
        "hold.placed": "Наложен запрет на уничтожение",
        "hold.released": "Снят запрет на уничтожение",
        "kek.destroyed": "Уничтожен ключ шифрования хранимых данных",
        "kek.rewrap.finished": "Перешифрование ключей данных завершено",
        "kek.rotated": "Заменён ключ шифрования хранимых данных",
        "key.activated": "Ключ введён в действие",
        "key.certificate.imported": "Загружен сертификат ключа",
        "key.expiring": "Истекает срок действия ключа",
        "key.publication.exported": "Выгружены сведения для публикации ключа",
        "key.revoked": "Ключ отозван",
        "key.rewrapped": "Ключ данных перешифрован",
        "key.rotated": "Создано новое поколение ключа",
        "message.delivered": "Документ доставлен",
        "message.purged": "Документ уничтожен по истечении срока хранения",
        "message.received": "Документ получен",
        "message.rejected": "Полученный документ отклонён",
        "message.rejected-by-peer": "Документ отклонён шлюзом получателя",
        "message.resent": "Документ направлен повторно",
        "message.resigned": "Документ повторно подписан после отзыва ключа",
        "message.submitted": "Документ направлен",
        "message.warnings": "Документ принят с предупреждениями",
        "operator.notified": "Уведомление оператору",
        "original.not-sent": "Оригинал не отправлен почтой в срок",
        "original.received": "Оригинал документа получен почтой",
        "original.sent": "Оригинал документа отправлен почтой",
        "peer.refused": "Запрос шлюза отправителя отклонён до проверки",
        "proceeding.closed": "Производство закрыто",
        "purge.batch": "Записи об уничтоженных документах (пакет)",
        "purge.failed": "Уничтожение прервано",
        "purge.finished": "Уничтожение завершено",
        "purge.started": "Начато уничтожение",
        "purge.tombstones": "Записи об уничтоженных документах (прежний формат)",
        "refusals.summary": "Сводка отказов за минуту",
        "reminder.scheduled": "Назначено напоминание о сроке",
        "retention.period_key_destroyed": "Уничтожен ключ периода хранения",
        "retention.policy_changed": "Изменены политики хранения",
        "token.created": "Выдан токен доступа",
        "token.revoked": "Отозван токен доступа",
        "user.added": "Добавлен пользователь",
        "user.disabled": "Пользователь отключён",
    }
)
"""The audit trail's event codes in Russian: exactly the codes of
``gateway.store.audit_events.AUDIT_EVENTS`` (tests/web/console/test_console_labels.py); the code
itself stays in the page for filtering (the filter takes codes)."""

AUDIT_FIELD_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "agreement": "Соглашение",
        "checkpoint_id": "Контрольная точка",
        "code": "Код",
        "confidential": "Конфиденциально",
        "conversation": "Переписка",
        "conversation_id": "Переписка",
        "data_keys": "Ключей данных",
        "days_left": "Осталось дней",
        "disclosure": "Раскрытие",
        "expired": "Истёк",
        "hash": "Хеш",
        "hold_id": "Запрет",
        "indication": "Результат проверки",
        "kek_id": "Ключ шифрования",
        "key": "Ключ",
        "kind": "Вид",
        "message": "Документ",
        "needed": "Требуется роль",
        "peer": "Узел",
        "policy": "Политика",
        "purge_run_id": "Запуск уничтожения",
        "purpose": "Цель",
        "reason": "Причина",
        "receipt": "Квитанция",
        "roles": "Роли",
        "secrets": "Секреты",
        "seq": "Событие №",
        "subject": "Владелец",
        "token": "Токен",
        "username": "Пользователь",
        "version": "Версия",
        "what": "Действие",
    }
)


def audit_value(value: object) -> str:
    """A detail of an audit event as a person reads it: yes/no, roles and codes by name."""
    if isinstance(value, bool):
        return "да" if value else "нет"
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(audit_value(v) for v in value)
    text = str(value)
    if "," in text and all(part in ROLE_LABELS for part in text.split(",")):
        return ", ".join(ROLE_LABELS[part] for part in text.split(","))  # user.added's roles
    for table in (ROLE_LABELS, STATE_LABELS, KIND_LABELS, AGREEMENT_LABELS, VERIFICATION_LABELS):
        if text in table:
            return table[text]
    return text


PURGE_STATE_LABELS: Mapping[str, str] = MappingProxyType(
    {"running": "выполняется", "finished": "завершён", "failed": "прерван"}
)

JOB_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "purge": "Уничтожение по срокам хранения (и контрольные точки журнала)",
        "outbox-retry": "Повторная отправка недоставленных документов",
        "deadline-reminders": "Напоминания о сроках исполнения",
        "key-expiry-warnings": "Предупреждения об истечении ключей и сертификатов",
    }
)
"""The scheduler's jobs (``gateway.jobs.scheduler.JOB_NAMES``)."""

JOB_OUTCOME_LABELS: Mapping[str, str] = MappingProxyType(
    {"running": "выполняется", "succeeded": "успешно", "failed": "ошибка"}
)

_KNOWN_BODIES: Mapping[str, str] = MappingProxyType({b.id: b.name_ru for b in DEMO_BODIES})


def body_name(body_id: str) -> str:
    """``RU-FSSP — Федеральная служба судебных приставов``; an unknown id as it is."""
    name = _KNOWN_BODIES.get(body_id)
    return f"{body_id} — {name}" if name else body_id


ATTACHMENT_REFUSAL_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "ATTACHMENT_NOT_PDF": "файл не является PDF — проверять нечего",
        "ATTACHMENT_NOT_SIGNED": "PDF не подписан — проверять нечего",
        "ATTACHMENT_DAMAGED": (
            "файл в хранилище повреждён или изменён — восстановите из резервной копии"
        ),
    }
)
"""Why a signed PDF attachment could not be verified (gateway.exchange.attachments)."""

SUB_INDICATION_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "FORMAT_FAILURE": "подпись не соответствует формату",
        "HASH_FAILURE": "документ изменён после подписания",
        "SIG_CRYPTO_FAILURE": "подпись не проходит криптографическую проверку",
        "REVOKED": "сертификат отозван",
        "EXPIRED": "срок действия сертификата истёк",
        "NOT_YET_VALID": "сертификат ещё не действует",
        "SIG_CONSTRAINTS_FAILURE": "подпись не отвечает требованиям",
        "NO_SIGNING_CERTIFICATE_FOUND": "сертификат подписанта не найден",
        "NO_CERTIFICATE_CHAIN_FOUND": "цепочка сертификатов не построена",
        "OUT_OF_BOUNDS_NO_POE": "время подписания вне срока действия сертификата",
        "OUT_OF_BOUNDS_NOT_REVOKED": "сертификат истёк, но не отозван",
        "REVOKED_NO_POE": "сертификат отозван; время подписания не доказано",
        "TRY_LATER": "нет актуального списка отзыва; повторите проверку позже",
        "SIGNED_DATA_NOT_FOUND": "подписанные данные не найдены",
        "CRYPTO_CONSTRAINTS_FAILURE": "недопустимый криптографический алгоритм",
        "CHAIN_CONSTRAINTS_FAILURE": "цепочка сертификатов не отвечает требованиям",
    }
)
"""ETSI EN 319 102-1 sub-indications (gateway.crypto.report.SubIndication) in Russian."""

DELIVERY_ERROR_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "BAD_ENDPOINT": "неверный адрес узла получателя в справочнике",
        "CONNECTION_LOST": "соединение прервано",
        "CONNECT_FAILED": "узел получателя недоступен",
        "HTTP_STATUS": "узел получателя ответил ошибкой",
        "NO_ENCRYPTION_CERTIFICATE": "нет сертификата шифрования получателя",
        "OFFICIAL_KEY_UNAVAILABLE": "ключ подписи уполномоченного лица недоступен",
        "RECEIPT_INVALID": "квитанция получателя неверна",
        "RECEIPT_MISMATCH": "квитанция не относится к документу",
        "RECEIPT_SEAL_NOT_IN_DIRECTORY": "печати квитанции нет в справочнике",
        "RECEIPT_SIGNATURE_INVALID": "подпись квитанции недействительна",
        "REJECTED": "отклонён шлюзом получателя",
        "RESPONSE_TOO_LARGE": "ответ узла получателя слишком велик",
        "TIMEOUT": "узел получателя не ответил вовремя",
        "TLS_FAILED": "защищённое соединение не установлено",
    }
)
"""Delivery error codes of the outbox (gateway.exchange.sending) in Russian."""
