"""Sample envelopes for rendition tests, built after the layout in docs/architecture.md.

They stand in for gateway/schemas/examples/valid/*.xml until the schemas exist; once they do, the
tests render those too. Field names follow GLOSSARY.md.
"""

from __future__ import annotations

import base64
import hashlib

ENV = "urn:cis-exchange:envelope:1"
CIS = "urn:cis-exchange:cis-enforcement:1"
SC = "urn:cis-exchange:ru-kz-supreme-courts:1"
COMMON = "urn:cis-exchange:common:1"

ATTACHMENT_BYTES = b"%PDF-1.7 fake judgment copy\n" * 40
ATTACHMENT_SHA256 = hashlib.sha256(ATTACHMENT_BYTES).hexdigest()

LONG_OPERATIVE_PART = (
    "Взыскать с Иванова Ивана Ивановича в пользу общества с ограниченной ответственностью "
    "«Северный ветер» задолженность по договору поставки № 17/2024 от 12.03.2024 в размере "
    "1 250 000 (один миллион двести пятьдесят тысяч) рублей, проценты за пользование чужими "
    "денежными средствами, а также расходы по уплате государственной пошлины. "
) * 25 + "Номерсчётабезпробелов" * 12
"""~8,500 characters: runs full width over more than one page, and ends in a word longer than a
line (the wrap must break it, not lose it)."""


def envelope(
    *,
    agreement: str,
    kind: str,
    body: str,
    confidential: bool = False,
    sender: str = "RU-FSSP",
    recipient: str = "KZ-MJ",
    message_id: str = "6f1c2a3e-8d4b-4c1e-9a7f-1b2c3d4e5f60",
    conversation_id: str = "0a9b8c7d-6e5f-4a3b-8c1d-2e3f4a5b6c7d",
    signatures: str = "",
) -> bytes:
    ns = CIS if agreement == "cis-enforcement" else SC
    xml = f"""<env:Envelope xmlns:env="{ENV}" xmlns:c="{COMMON}">
  <env:Header Id="header">
    <env:MessageId>{message_id}</env:MessageId>
    <env:ConversationId>{conversation_id}</env:ConversationId>
    <env:Agreement>{agreement}</env:Agreement>
    <env:Kind>{kind}</env:Kind>
    <env:Sender>{sender}</env:Sender>
    <env:Recipient>{recipient}</env:Recipient>
    <env:Created>2026-11-23T10:00:00Z</env:Created>
    <env:Confidential>{"true" if confidential else "false"}</env:Confidential>
    <env:Urgency>normal</env:Urgency>
    <env:RequestedDeadline>2026-12-10</env:RequestedDeadline>
    <env:Language>ru</env:Language>
  </env:Header>
  <env:Body Id="body">
    <p:{kind} xmlns:p="{ns}">{body}</p:{kind}>
  </env:Body>{signatures}
</env:Envelope>"""
    return xml.encode()


def cis_request(*, confidential: bool = True) -> bytes:
    content = base64.b64encode(ATTACHMENT_BYTES).decode()
    body = f"""
      <p:Purpose>Установление имущественного положения должника</p:Purpose>
      <p:Proceeding>
        <p:ProceedingNumber>12345/26/77001-ИП</p:ProceedingNumber>
        <p:EnforcementDocument>
          <p:Issuer>Арбитражный суд города Москвы</p:Issuer>
          <p:IssuerKind>court</p:IssuerKind>
          <p:Number>ФС № 041234567</p:Number>
          <p:Date>2026-05-14</p:Date>
          <p:OperativePart>{LONG_OPERATIVE_PART}</p:OperativePart>
        </p:EnforcementDocument>
      </p:Proceeding>
      <p:Debtor>
        <c:Person>
          <c:LastName>Иванов</c:LastName>
          <c:FirstName>Иван</c:FirstName>
          <c:MiddleName>Иванович</c:MiddleName>
          <c:BirthDate>1980-02-29</c:BirthDate>
          <c:PersonalNumber>800229300123</c:PersonalNumber>
        </c:Person>
      </p:Debtor>
      <p:Questions>
        <!-- comments are not fields -->
        <p:Question>Имеются ли у должника счета в банках Республики Казахстан?</p:Question>
        <p:Question>Зарегистрированы ли за должником транспортные средства?</p:Question>
      </p:Questions>
      <p:Subjects>
        <p:Accounts>true</p:Accounts>
        <p:Vehicles>true</p:Vehicles>
        <p:Income period-years="3">true</p:Income>
      </p:Subjects>
      <p:ZzUnknownField>значение неизвестного поля</p:ZzUnknownField>
      <c:Attachments>
        <c:Attachment>
          <c:Title>Копия решения суда</c:Title>
          <c:FileName>решение суда.pdf</c:FileName>
          <c:MediaType>application/pdf</c:MediaType>
          <c:Sha256>{ATTACHMENT_SHA256}</c:Sha256>
          <c:Content>{content}</c:Content>
        </c:Attachment>
      </c:Attachments>"""
    return envelope(
        agreement="cis-enforcement", kind="Request", body=body, confidential=confidential
    )


def sc_response() -> bytes:
    body = """
      <p:Result>Запрос исполнен. Копия определения направлена участникам процесса.</p:Result>
      <p:Case>
        <p:CaseNumber>А40-123456/2026</p:CaseNumber>
        <p:Court>Верховный Суд Республики Казахстан</p:Court>
        <p:DecisionDate>2026-11-20</p:DecisionDate>
      </p:Case>"""
    return envelope(
        agreement="ru-kz-supreme-courts",
        kind="Response",
        body=body,
        sender="KZ-VS",
        recipient="RU-VS",
    )


def cis_receipt() -> bytes:
    body = """
      <c:ReceivedMessageId>11111111-2222-4333-8444-555555555555</c:ReceivedMessageId>
      <c:ReceivedSha256>9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08</c:ReceivedSha256>
      <c:Received>2026-11-23T10:00:05+03:00</c:Received>"""
    return envelope(
        agreement="cis-enforcement", kind="Receipt", body=body, sender="KZ-MJ", recipient="RU-FSSP"
    )
