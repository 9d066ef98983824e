"""The OpenAPI 3.1 description of the local API, served at ``GET /api/v1/openapi.json``.

Written by hand, next to the routes it describes (gateway/web/local_api.py); a test checks that
every route of the aiohttp router is described here and every path here is a route. Schemas of
the views follow gateway.exchange.service field for field; the document itself is described only
as ``{"header": {...}, "body": {...}}``: its full shape is the XSD (docs/documents.md).
"""

from __future__ import annotations

from typing import Any

from gateway.crypto.algorithms import KeySpec
from gateway.crypto.keys.generations import RevocationReason
from gateway.crypto.keys.kek import KEY_ID_PATTERN as KEK_ID_PATTERN

API_VERSION = "1.0.0"

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"{_REF}{name}"}


def _resp(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_DATE = {"type": "string", "format": "date"}
_DATETIME = {"type": "string", "format": "date-time"}
_UUID = {
    "type": "string",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


_SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "code": {**_STR, "description": "Stable code; programs may rely on it."},
                    "message": {**_STR, "description": "English; never quotes a sent value."},
                    "message_ru": {**_STR, "description": "Russian, for the operator."},
                    "role": {**_STR, "description": "403 only: the role the action needs."},
                    "parameter": {**_STR, "description": "400 only: the parameter at fault."},
                },
                required=["code", "message", "message_ru"],
            ),
        }
    ),
    "Problem": _object(
        {
            "code": {**_STR, "description": "Stable rule code, e.g. RULE_INCOME_PERIOD_TOO_LONG."},
            "path": {**_STR, "description": "Where in the document, e.g. /Envelope/Body/Request."},
            "message_ru": _STR,
            "message_en": _STR,
            "remedy_ru": {**_STR, "description": "What to do, in Russian."},
            "article": {**_STR, "description": "Agreement article, e.g. CIS Art. 7; may be empty."},
            "severity": {"type": "string", "enum": ["error", "warning"]},
        }
    ),
    "Rejected": {
        "allOf": [
            _ref("Error"),
            _object({"problems": {"type": "array", "items": _ref("Problem")}}),
        ]
    },
    "Document": {
        "type": "object",
        "description": "A document in its JSON form (mirrors the XSD; docs/documents.md).",
        "properties": {
            "header": {
                "type": "object",
                "description": "Envelope header: MessageId, ConversationId, Agreement, Kind, ...",
            },
            "body": {
                "type": "object",
                "description": "Exactly one key: the message kind.",
                "minProperties": 1,
                "maxProperties": 1,
            },
            "attachments": {
                "type": "array",
                "maxItems": 50,
                "description": "Uploads (POST /api/v1/attachments) sent beside the XML, in "
                "order, listed in the signed header; each an id, or an object saying what the "
                "file is (docs/attachments.md).",
                "items": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "object",
                            "properties": {
                                "id": {"type": "string"},
                                "title": {"type": "string", "maxLength": 500},
                                "translation_of": {
                                    "type": "string",
                                    "description": "The name of the file of this list that "
                                    "this one translates into Russian (CIS Art. 19; SC Art. 11).",
                                },
                                "register_extract": {
                                    "type": "boolean",
                                    "description": "A register extract: no translation (CIS "
                                    "Art. 5 para. 3).",
                                },
                            },
                            "required": ["id"],
                            "additionalProperties": False,
                        },
                    ]
                },
            },
        },
        "required": ["header", "body"],
        "additionalProperties": False,
    },
    "SubmitResult": _object(
        {
            "message_id": _UUID,
            "conversation_id": _UUID,
            "state": {**_STR, "description": "The conversation's state after acceptance."},
            "warnings": {"type": "array", "items": _ref("Problem")},
        }
    ),
    "ConversationSummary": _object(
        {
            "conversation_id": _UUID,
            "agreement": _STR,
            "requesting_party": _STR,
            "requested_party": _STR,
            "opening_kind": _STR,
            "last_kind": _STR,
            "state": _STR,
            "confidential": {"type": "boolean"},
            "deadline": {"type": ["string", "null"], "format": "date"},
            "opened_at": _DATETIME,
            "updated_at": _DATETIME,
            "proceeding_closed_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the proceeding was marked closed (CIS Art. 9.6); null: not.",
            },
            "urgent": {
                "type": "boolean",
                "description": "Its request was sent as urgent (SC Art. 5.2); reminded at every "
                "run of the reminder job while open.",
            },
            "case_number": {
                **_NULLABLE_STR,
                "description": "The proceeding's number from the opening document (CIS); null: "
                "none, or hidden.",
            },
            "debtor": {
                **_NULLABLE_STR,
                "description": "The debtor, masked (surname and initials, or an organisation's "
                "name); null: none, or hidden.",
            },
            "hidden": {
                "type": "boolean",
                "description": "Confidential and the caller lacks confidential-reader: case "
                "number and debtor withheld (CIS Art. 16; SC Art. 8.1).",
            },
        }
    ),
    "Page": _object(
        {
            "items": {"type": "array", "items": _ref("ConversationSummary")},
            "next_cursor": {
                **_NULLABLE_STR,
                "description": "Pass as 'after' for the next page; null on the last page.",
            },
        }
    ),
    "MessageSummary": _object(
        {
            "message_id": _UUID,
            "conversation_id": _UUID,
            "in_reply_to": _NULLABLE_STR,
            "direction": {"type": "string", "enum": ["in", "out"]},
            "kind": _STR,
            "sender": _STR,
            "recipient": _STR,
            "created": _DATETIME,
            "stored_at": _DATETIME,
            "confidential": {"type": "boolean"},
            "document_sha256": _STR,
            "delivery_state": {
                "type": ["string", "null"],
                "description": "pending, delivered, failed; null for received messages.",
            },
            "verification": {
                **_NULLABLE_STR,
                "description": "ETSI indication of the check when it was stored; null for a "
                "document this node signed itself.",
            },
            "purged": {"type": "boolean"},
            "late": {
                "type": ["object", "null"],
                "description": "A Response or Refusal made after the due date with no delay "
                "notice covering it (CIS Art. 12; SC Art. 6.1): due, answered_on (the requested "
                "party's local date), days_late, working_days (the unit of days_late).",
            },
        }
    ),
    "ConversationView": _object(
        {
            "summary": _ref("ConversationSummary"),
            "messages": {"type": "array", "items": _ref("MessageSummary")},
            "working_days_left": {
                "type": ["integer", "null"],
                "description": "Days left in the term's unit (working days for CIS, calendar "
                "days for SC), from the requested party's local today.",
            },
            "deadline_why": {
                **_NULLABLE_STR,
                "description": "Which calendar, zone and pauses fixed the due date.",
            },
        }
    ),
    "MessageView": _object(
        {
            "summary": _ref("MessageSummary"),
            "header": {"type": "object"},
            "body": {"type": ["object", "null"], "description": "null when purged."},
            "report": {"type": "object", "description": "The verification report."},
            "receipt": {"type": ["object", "null"]},
            "delivery_attempts": {"type": "array", "items": {"type": "object"}},
            "tombstone": {
                "type": ["object", "null"],
                "description": "For a purged message (CIS Art. 9.6): purged_at, policy, "
                "purge_run_id; the summary keeps kind, parties, dates and SHA-256 (purged: true). "
                "A purged message is answered 200 with its tombstone, never 404.",
            },
            "resent_as": {
                **_NULLABLE_STR,
                "description": "The new message that replaced this refused one (a resend).",
            },
            "resent_from": {
                **_NULLABLE_STR,
                "description": "The refused message this one replaced, if it is a resend.",
            },
            "attachment_checks": {
                "type": "array",
                "items": {"type": "object"},
                "description": "The latest recorded verification of each signed PDF attachment "
                "someone asked to verify: number, sha256, checked_at, checked_by and either the "
                "verdict (indication, sub_indication, signers, signatures) or refused (its code).",
            },
        }
    ),
    "LegalHold": _object(
        {
            "hold_id": {"type": "integer"},
            "conversation_id": _UUID,
            "reference": {
                "type": "string",
                "description": "The reason: an order or case reference.",
            },
            "placed_by": _STR,
            "placed_at": _DATETIME,
            "released_by": _NULLABLE_STR,
            "released_at": {"type": ["string", "null"], "format": "date-time"},
        }
    ),
    "Health": _object({"status": {"type": "string", "enum": ["ok"]}}),
}


def _json_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {**_object(properties, required), "additionalProperties": False}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _object_answer(description: str) -> dict[str, Any]:
    """A JSON object answer, its keys named by the description."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def _answer(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _object(properties)}},
    }


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_KEY_PATH = [
    {
        "name": "role",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": ["seal", "official", "tls", "encryption"]},
    },
    {"name": "generation", "in": "path", "required": True, "schema": {"type": "string"}},
]


_KEK_ID = {
    "name": "kek_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": KEK_ID_PATTERN.pattern},
    "description": "A KEK's id, as `gateway keys list` shows it.",
}
_DESTRUCTION_NOTICE = {
    "kek_id": _STR,
    "warnings": {"type": "array", "items": _STR},
    "acknowledge": _STR,
}


_ATTACHMENT_ID = _path("attachment_id", _UUID)
_UPLOAD_LENGTH = {
    "name": "Upload-Length",
    "in": "header",
    "required": False,
    "schema": {"type": "integer", "minimum": 1},
    "description": "Start a resumable upload of this many bytes (no body): its parts follow "
    "with PATCH.",
}
_UPLOAD_STATE = {
    "attachment_id": _UUID,
    "length": {"type": "integer"},
    "offset": {"type": "integer"},
    "complete": {"type": "boolean"},
    "sha256": _NULLABLE_STR,
}


def _returns(description: str, schema: str = "Error") -> dict[str, Any]:
    """An answer whose JSON is the named schema (an error unless another is named)."""
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


_RESPONSES: dict[str, Any] = {
    "BadRequest": _returns(
        "A parameter, header or the JSON is malformed (INVALID_PARAMETER, "
        "INVALID_JSON), or the HTTP request itself (MALFORMED_REQUEST: refused by the HTTP "
        "parser, in this same shape); the message names which, never the value."
    ),
    "Unauthorized": {
        **_returns("No bearer token, or an unknown one (UNAUTHENTICATED)."),
        "headers": {"WWW-Authenticate": {"schema": _STR}},
    },
    "Forbidden": _returns("The token lacks the role named in error.role (FORBIDDEN)."),
    "NotFound": _returns("No such conversation or message (NOT_FOUND)."),
    "PurposeRequired": _returns(
        "Reading a document's content (any conversation) or a confidential conversation: state "
        "the purpose in X-Purpose or ?purpose= (PURPOSE_REQUIRED, CIS Art. 9.1)."
    ),
    "InternalError": _returns("The node's fault (INTERNAL_ERROR); details in its log only."),
    "Unavailable": {
        **_returns(
            "Nothing was stored, and the same request succeeds later (Retry-After): the "
            "conversation changed meanwhile (TRY_AGAIN), the store could not write "
            "(STORAGE_FULL) or the database restarts (DATABASE_UNAVAILABLE)."
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
    "JsonTooLarge": _returns("The JSON body is over 16 MiB (BODY_TOO_LARGE)."),
    "NotJson": _returns("The body is not application/json in UTF-8 (UNSUPPORTED_MEDIA_TYPE)."),
    "InvalidCharacter": _returns(
        "A string of the JSON holds a character XML 1.0 does not allow (INVALID_CHARACTER); "
        "the message names where, never the value."
    ),
}

_PARAMETERS: dict[str, Any] = {
    "MessageId": {
        "name": "message_id",
        "in": "path",
        "required": True,
        "schema": _UUID,
        "description": "The message id (header MessageId), canonical lower-case UUID.",
    },
    "ConversationId": {
        "name": "conversation_id",
        "in": "path",
        "required": True,
        "schema": _UUID,
    },
    "PurposeHeader": {
        "name": "X-Purpose",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 500},
        "description": "Why a document's content (or a confidential conversation) is read "
        "(CIS Art. 9.1); required for every such read, recorded encrypted in the audit trail. "
        "UTF-8, plain or percent-encoded.",
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
        "description": "Makes a retry safe for a document without its own MessageId: the same "
        "key and body within 24 hours get the first answer again (Idempotent-Replayed: true) "
        "and nothing is stored twice; another body is 422 IDEMPOTENCY_KEY_REUSED.",
    },
    "PurposeQuery": {
        "name": "purpose",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 500},
        "description": "Same as X-Purpose, for clients that cannot set headers. Prefer the header.",
    },
}

_COMMON = {"401": _resp("Unauthorized"), "403": _resp("Forbidden"), "500": _resp("InternalError")}
_READ = {
    **_COMMON,
    "404": _resp("NotFound"),
    "428": _resp("PurposeRequired"),
}
_PURPOSE = [_param("PurposeHeader"), _param("PurposeQuery")]


def _record_answers(done: str, conflict: str, invalid: str) -> dict[str, Any]:
    """The answers of a record the node sets once (an original's dates, a proceeding's
    closing): 200 ``done``; refused (:class:`gateway.model.problems.Refused`) 409 by the
    record's state, ``conflict``, or 422 by the input, ``invalid``."""
    return {
        "200": _object_answer(done),
        "409": _returns(conflict),
        "422": _returns(invalid),
        **_COMMON,
        "404": _resp("NotFound"),
    }


_HOLD_REASON = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "reason": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 128,
                        "description": "The order or case reference (no personal data).",
                    }
                },
                "required": ["reason"],
                "additionalProperties": False,
            }
        }
    },
}


def _download(media_type: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {
            "Content-Disposition": {
                "schema": _STR,
                "description": 'attachment; filename="<message_id>.<ext>"',
            }
        },
        "content": {media_type: {"schema": {"type": "string", "contentMediaType": media_type}}},
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _paths() -> dict[str, Any]:
    message_param = [_param("MessageId")]
    attachment_number = {
        "name": "number",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 50},
    }
    return {
        "/api/v1/messages": {
            "post": {
                "operationId": "submitMessage",
                "summary": "Submit a document: converted, validated, signed, queued.",
                "parameters": [_param("IdempotencyKey")],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Document")}},
                },
                "responses": {
                    "202": {
                        "description": "Accepted for sending; warnings listed.",
                        "headers": {
                            "Location": {"schema": _STR},
                            "Idempotent-Replayed": {
                                "schema": {"type": "string", "enum": ["true"]},
                                "description": "Present on the first answer given again.",
                            },
                        },
                        "content": {"application/json": {"schema": _ref("SubmitResult")}},
                    },
                    "409": _returns(
                        "The conversation does not allow this document now (PROTOCOL_* codes).",
                        "Rejected",
                    ),
                    "413": _returns("Body over 16 MiB (BODY_TOO_LARGE)."),
                    "415": _returns("Not application/json in UTF-8 (UNSUPPORTED_MEDIA_TYPE)."),
                    "422": _returns(
                        "The document breaks the schema or the rules (DOCUMENT_REJECTED), or a "
                        "string holds a character XML 1.0 does not allow (INVALID_CHARACTER; "
                        "problems name each field by JSON Pointer), or the JSON breaks a shape "
                        "bound (DOCUMENT_TOO_COMPLEX), or the Idempotency-Key was used for "
                        "another body (IDEMPOTENCY_KEY_REUSED).",
                        "Rejected",
                    ),
                    **_COMMON,
                },
            }
        },
        "/api/v1/conversations": {
            "get": {
                "operationId": "listConversations",
                "summary": "Conversations, newest first, keyset-paged.",
                "parameters": [
                    _query(
                        "agreement",
                        {"type": "string", "enum": ["cis-enforcement", "ru-kz-supreme-courts"]},
                        "Agreement id.",
                    ),
                    _query(
                        "q",
                        {"type": "string", "maxLength": 200},
                        "A case number or a debtor's name, found through the keyed index "
                        "(exact after normalisation: case, ё/е, spaces, dashes); confidential "
                        "conversations only for confidential-reader.",
                    ),
                    _query("body", {"type": "string"}, "Either party's body id, e.g. RU-FSSP."),
                    _query("state", {"type": "string"}, "Conversation state, e.g. in-progress."),
                    _query("kind", {"type": "string"}, "The opening kind, e.g. Request."),
                    _query("deadline_before", _DATE, "Deadline strictly before this date."),
                    _query("confidential", {"type": "boolean"}, "true or false."),
                    _query(
                        "after",
                        {"type": "string", "maxLength": 512},
                        "next_cursor of the previous page.",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                        "Page size.",
                    ),
                ],
                "responses": {
                    "200": _returns("One page.", "Page"),
                    **_COMMON,
                },
            }
        },
        "/api/v1/conversations/{conversation_id}": {
            "get": {
                "operationId": "getConversation",
                "summary": "One conversation with its messages.",
                "parameters": [_param("ConversationId"), *_PURPOSE],
                "responses": {
                    "200": _returns("The conversation.", "ConversationView"),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}": {
            "get": {
                "operationId": "getMessage",
                "summary": "One message as JSON (header, body, report, receipt, deliveries).",
                "parameters": [*message_param, *_PURPOSE],
                "responses": {
                    "200": _returns("The message.", "MessageView"),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/xml": {
            "get": {
                "operationId": "getMessageXml",
                "summary": "The signed document, byte-exact as it went on the wire.",
                "parameters": [*message_param, *_PURPOSE],
                "responses": {
                    "200": _download("application/xml", "The signed XML document."),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/pdf": {
            "get": {
                "operationId": "getMessagePdf",
                "summary": "The signed PDF rendition (PAdES, the body's seal).",
                "parameters": [*message_param, *_PURPOSE],
                "responses": {
                    "200": _download("application/pdf", "The signed PDF."),
                    **_READ,
                },
            }
        },
        "/api/v1/attachments": {
            "post": {
                "operationId": "uploadAttachment",
                "summary": "Upload one file to send beside a document (raw body, streamed, "
                "hashed and encrypted as it arrives); list its id in the submission's "
                "attachments (docs/attachments.md).",
                "parameters": [
                    {
                        "name": "name",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "The file name as the recipient will see it.",
                    },
                    _query("media_type", _STR, "e.g. application/pdf (else Content-Type)."),
                    _query("language", _STR, "ISO 639 code of the file's language."),
                    _UPLOAD_LENGTH,
                ],
                "requestBody": {
                    "required": False,
                    "description": "The file; none with Upload-Length (a resumable upload).",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {
                    "201": {
                        "description": "Stored, not yet sent: its id, size and SHA-256. With "
                        "Upload-Length: a resumable upload created (Location: its address), "
                        "answered as by GET on it.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _object(
                                            {
                                                "attachment_id": _UUID,
                                                "size": {"type": "integer"},
                                                "sha256": _STR,
                                            }
                                        ),
                                        _object(_UPLOAD_STATE),
                                    ]
                                }
                            }
                        },
                    },
                    "413": _returns("Over [limits] max_attachment_bytes (ATTACHMENT_TOO_LARGE)."),
                    "400": _returns(
                        "A bad name, type or language (INVALID_PARAMETER), or the upload "
                        "ended early (UPLOAD_INCOMPLETE): nothing is kept."
                    ),
                    **_COMMON,
                },
            }
        },
        "/api/v1/attachments/{attachment_id}": {
            "get": {
                "operationId": "getUpload",
                "summary": "Where a resumable upload stands: the next part starts at `offset` "
                "(whole 64 KiB segments are kept, also of a part that broke off).",
                "parameters": [_ATTACHMENT_ID],
                "responses": {
                    "200": _answer("The upload's state.", _UPLOAD_STATE),
                    "404": _returns("No such resumable upload still unsent (NOT_FOUND)."),
                    **_COMMON,
                },
            },
            "patch": {
                "operationId": "appendUpload",
                "summary": "The next part of a resumable upload (raw body, streamed), from "
                "Upload-Offset; the part that reaches the declared length completes it "
                '(docs/attachments.md, "Resumable uploads").',
                "parameters": [
                    _ATTACHMENT_ID,
                    {
                        "name": "Upload-Offset",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Where the part starts: the upload's `offset`.",
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {
                    "200": _answer("The upload's state after the part.", _UPLOAD_STATE),
                    "400": _returns(
                        "The part ran past Upload-Length (UPLOAD_TOO_LONG) or broke off "
                        "(UPLOAD_INCOMPLETE): its whole segments are kept; a bad Upload-Offset "
                        "(INVALID_PARAMETER)."
                    ),
                    "404": _returns("No such resumable upload still unsent (NOT_FOUND)."),
                    "409": _returns(
                        "The part does not start where the stored bytes end, or the upload "
                        "is complete (UPLOAD_OFFSET_MISMATCH, with `offset` and `complete`); "
                        "nothing of it was stored."
                    ),
                    **_COMMON,
                },
            },
        },
        "/api/v1/messages/{message_id}/attachments/{number}": {
            "get": {
                "operationId": "getMessageAttachment",
                "summary": "One attachment of the message (1-based, the signed list's order), "
                "streamed; X-Content-SHA256 gives its signed digest (and, quoted, its ETag). "
                "One byte range (Range: bytes=N-, N-M or -N) is answered 206: a broken "
                "download goes on where it stopped (curl -C -).",
                "parameters": [
                    *message_param,
                    attachment_number,
                    *_PURPOSE,
                    {
                        "name": "Range",
                        "in": "header",
                        "required": False,
                        "schema": _STR,
                        "description": "One byte range; several, or an If-Range naming "
                        "another ETag, get the whole file (200).",
                    },
                ],
                "responses": {
                    "200": _download("application/octet-stream", "The file, as signed."),
                    "206": _download(
                        "application/octet-stream",
                        "The bytes of the range asked for; Content-Range says which.",
                    ),
                    "416": _returns(
                        "The range starts at or past the file's end (RANGE_NOT_SATISFIABLE); "
                        "Content-Range: bytes */<size>."
                    ),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/attachments/{number}/returns": {
            "post": {
                "operationId": "returnMessageAttachment",
                "summary": "Take a received message's file in again as an upload (streamed from "
                "the store under a new key, its SHA-256 checked against the signed one), to "
                "list in the `attachments` of a refusal that returns it, its name in "
                "`ReturnedDocuments` (CIS Art. 13: the refusal goes with the documents "
                "returned). Same role and purpose as downloading the file, and the operator's "
                "role to send; the copy is audited `attachment.uploaded` naming the message. "
                "An upload no submission takes is deleted after a day, like any other.",
                "parameters": [*message_param, attachment_number, *_PURPOSE],
                "responses": {
                    "201": _object_answer(
                        "The upload: `attachment_id`, `size`, `sha256` (the received file's)."
                    ),
                    "500": _returns(
                        "ATTACHMENT_DAMAGED: the stored file does not read back as signed "
                        "(altered or cut in the store); restore from a backup. No copy is kept."
                    ),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/attachments/{number}/verifications": {
            "post": {
                "operationId": "verifyMessageAttachment",
                "summary": "Verify every signature of a signed PDF attachment (PAdES), read in "
                "place from the store (never held whole), with the node's trust anchors and "
                "CRLs in force now; the verdict is recorded (audit `attachment.verified`) and "
                "shown in the message's `attachment_checks`. Same role and purpose as "
                "downloading the file.",
                "parameters": [*message_param, attachment_number, *_PURPOSE],
                "responses": {
                    "201": _object_answer(
                        "The verdict just recorded: `indication`, `sub_indication`, "
                        "`checked_at`, `sha256` and one entry per signature."
                    ),
                    "422": _returns(
                        "ATTACHMENT_NOT_PDF (not a PDF) or ATTACHMENT_NOT_SIGNED (a PDF "
                        "without a signature): nothing to verify."
                    ),
                    "500": _returns(
                        "ATTACHMENT_DAMAGED: the stored file failed authentication (altered "
                        "or cut in the store); restore from a backup."
                    ),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/receipt": {
            "get": {
                "operationId": "getMessageReceipt",
                "summary": "The signed receipt for the message (a stated purpose, and in a "
                "confidential conversation confidential-reader, as for the message).",
                "parameters": [*message_param, *_PURPOSE],
                "responses": {
                    "200": _download("application/xml", "The signed receipt."),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/report": {
            "get": {
                "operationId": "getMessageReport",
                "summary": "The verification report of the message's signatures.",
                "parameters": [*message_param, *_PURPOSE],
                "responses": {
                    "200": _object_answer("The report."),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/verifications": {
            "post": {
                "operationId": "reverifyMessage",
                "summary": "Verify the message's signatures again, now, with the trust and "
                "revocation lists in force now; the result is recorded (purpose `reverify`) and "
                "becomes the report the views show. Reading the message never re-verifies. The "
                "node's proof that the document existed (the exchange's signed receipt, a signed "
                "audit checkpoint) keeps a signature valid after a later revocation or expiry of "
                "its certificate; such a signature names it in `existence_evidence` and "
                "`existence_time`.",
                "parameters": [*message_param, *_PURPOSE],
                "responses": {
                    "201": _object_answer(
                        "The report just recorded, with `recorded_at` and `recorded_for`."
                    ),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/resend": {
            "post": {
                "operationId": "resendMessage",
                "summary": "Send a document the peer refused for good (signed Rejection) or whose "
                "delivery was given up (dead letter) again, as a new message linked to it "
                "(`message.resent`; `resent_as` / `resent_from` on the two messages). Body: the "
                "corrected document (same Kind and Recipient; same ConversationId unless the "
                "original opened its conversation; no MessageId or a new one), or empty for the "
                "same content. Each original is resent once.",
                "parameters": [*message_param],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("Document")}},
                },
                "responses": {
                    "202": {
                        "description": "The new message, accepted for sending.",
                        "headers": {"Location": {"schema": _STR}},
                        "content": {"application/json": {"schema": _ref("SubmitResult")}},
                    },
                    "409": _returns(
                        "NOT_RESENDABLE (not ours, not stored, or not refused for good), "
                        "ALREADY_RESENT (names the new message), or the conversation does not "
                        "allow the document now (PROTOCOL_* codes, with `problems`)."
                    ),
                    "422": _returns(
                        "RESEND_MISMATCH (names the header field), or the document is refused "
                        "as a submission would be (DOCUMENT_REJECTED, INVALID_CHARACTER).",
                        "Rejected",
                    ),
                    **_COMMON,
                },
            }
        },
        "/api/v1/conversations/{conversation_id}/proceeding-closed": {
            "post": {
                "operationId": "closeProceeding",
                "summary": "Mark the conversation's proceeding closed (CIS Art. 9.6): retention "
                "policies counting from `proceeding-closed` start at `closed_at`. Set once; "
                "audited (`proceeding.closed`). 409 `PROCEEDING_ALREADY_CLOSED`; 422 "
                "`PROCEEDING_CLOSED_IN_FUTURE`, `PROCEEDING_CLOSED_BEFORE_CONVERSATION`, "
                "`PROCEEDING_REFERENCE`.",
                "parameters": [_param("ConversationId")],
                "requestBody": _json_body(
                    {
                        "closed_at": {"type": "string", "format": "date-time"},
                        "reference": {"type": "string", "maxLength": 128},
                    },
                    ["closed_at", "reference"],
                ),
                "responses": _record_answers(
                    "Marked: the conversation id, the date and the reference.",
                    "Marked closed already (PROCEEDING_ALREADY_CLOSED).",
                    "A date in the future or before the conversation, or no reference "
                    "(PROCEEDING_CLOSED_IN_FUTURE, PROCEEDING_CLOSED_BEFORE_CONVERSATION, "
                    "PROCEEDING_REFERENCE).",
                ),
            }
        },
        "/api/v1/conversations/{conversation_id}/originals": {
            "get": {
                "operationId": "getOriginals",
                "summary": "The conversation's documents followed by an original by post (CIS "
                "Art. 10 para. 1): for each, `message_id`, `kind`, `direction`, `created`, "
                "`sent_on`, `tracking`, `received_on` (null until marked). A confidential "
                "conversation's, as its list of messages: `confidential-reader` and a stated "
                "purpose (audited `conversation.read`).",
                "parameters": [_param("ConversationId"), *_PURPOSE],
                "responses": {
                    "200": _object_answer("`{conversation_id, originals: [...]}`."),
                    **_READ,
                },
            }
        },
        "/api/v1/messages/{message_id}/original/sent": {
            "post": {
                "operationId": "markOriginalSent",
                "summary": "Mark the original of a document this node sent as posted (CIS Art. 10 "
                "para. 1): the date (the node's) and the carrier's tracking number. Set once; "
                "audited (`original.sent`).",
                "parameters": [_param("MessageId")],
                "requestBody": _json_body(
                    {
                        "sent_on": {"type": "string", "format": "date"},
                        "tracking": {"type": "string", "maxLength": 40},
                    },
                    ["sent_on", "tracking"],
                ),
                "responses": _record_answers(
                    "Marked: the document's record of its original.",
                    "Marked sent already (ORIGINAL_ALREADY_SENT).",
                    "A date in the future or before the document, a bad tracking number, a "
                    "received document or one with no original (ORIGINAL_DATE_IN_FUTURE, "
                    "ORIGINAL_SENT_BEFORE_DOCUMENT, ORIGINAL_TRACKING, ORIGINAL_NOT_OURS, "
                    "ORIGINAL_NOT_REQUIRED); `field` names the field.",
                ),
            }
        },
        "/api/v1/messages/{message_id}/original/received": {
            "post": {
                "operationId": "markOriginalReceived",
                "summary": "Mark the original of a document received (CIS Art. 10 para. 1): here "
                "for a document received, at the other party for one of ours. Set once; audited "
                "(`original.received`).",
                "parameters": [_param("MessageId")],
                "requestBody": _json_body(
                    {"received_on": {"type": "string", "format": "date"}}, ["received_on"]
                ),
                "responses": _record_answers(
                    "Marked: the document's record of its original.",
                    "Marked received already, or ours not marked sent yet "
                    "(ORIGINAL_ALREADY_RECEIVED, ORIGINAL_NOT_SENT).",
                    "A date in the future or before the document or its dispatch, or a "
                    "document with no original (ORIGINAL_DATE_IN_FUTURE, "
                    "ORIGINAL_RECEIVED_TOO_EARLY, ORIGINAL_NOT_REQUIRED); `field` names the "
                    "field.",
                ),
            }
        },
        "/api/v1/messages/{message_id}/disclosures": {
            "post": {
                "operationId": "discloseMessage",
                "summary": "Disclose a stored document (CIS Art. 9.2-9.3, 16; SC Art. 8.2): to "
                "the creditor or debtor as the agreement allows, to a third party only with the "
                "providing body's consent. Needs confidential-reader; recorded and audited.",
                "parameters": [*message_param],
                "requestBody": _json_body(
                    {
                        "recipient": {"type": "string", "maxLength": 500},
                        "category": {
                            "type": "string",
                            "enum": ["creditor", "debtor", "third-party"],
                        },
                        "purpose": {"type": "string", "maxLength": 500},
                    },
                    ["recipient", "category", "purpose"],
                ),
                "responses": {
                    "201": _object_answer(
                        "Disclosed and recorded: the disclosure id, the article "
                        "that allows it, conditions of the consent, the creditor's procedure."
                    ),
                    **_READ,
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This description.",
                "security": [],
                "responses": {"200": _object_answer("OpenAPI 3.1.")},
            }
        },
        "/api/v1/keys/expiring": {
            "get": {
                "operationId": "getExpiringKeys",
                "summary": "Keys in use whose certificates end within 30 days (rotate them: "
                "docs/key-rotation.md). Administrators and auditors.",
                "responses": {
                    "200": {
                        "description": "Role, key name, generation, status, end of validity, "
                        "days left, certificate SHA-256.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "keys": {"type": "array", "items": {"type": "object"}}
                                    },
                                    "required": ["keys"],
                                }
                            }
                        },
                    },
                    **_COMMON,
                },
            }
        },
        "/api/v1/holds": {
            "get": {
                "operationId": "listHolds",
                "summary": "Legal holds on purging (CIS Art. 9.6), newest first: the active ones, "
                "or every one with `all=yes`; one conversation's with `conversation_id`. "
                "Administrators.",
                "parameters": [
                    _query("all", {"type": "string", "enum": ["yes", "no"]}, "Released too."),
                    _query("conversation_id", _UUID, "Only this conversation's holds."),
                ],
                "responses": {
                    "200": {
                        "description": "Each hold: id, conversation, reference (the reason), who "
                        "placed it and when, who released it and when (null while active).",
                        "content": {
                            "application/json": {
                                "schema": _object(
                                    {"holds": {"type": "array", "items": _ref("LegalHold")}},
                                    ["holds"],
                                )
                            }
                        },
                    },
                    **_COMMON,
                },
            }
        },
        "/api/v1/conversations/{conversation_id}/holds": {
            "post": {
                "operationId": "placeHold",
                "summary": "Put the conversation under a legal hold (CIS Art. 9.6): nothing of it "
                "is purged until released. Audited (`hold.placed`). 422 `HOLD_REFUSED`: no such "
                "stored conversation, or the reason is not 1..128 characters.",
                "parameters": [_param("ConversationId")],
                "requestBody": _HOLD_REASON,
                "responses": {
                    "201": {
                        "description": "Placed: the hold's id and the conversation id.",
                        "content": {
                            "application/json": {
                                "schema": _object(
                                    {"hold_id": {"type": "integer"}, "conversation_id": _UUID},
                                    ["hold_id", "conversation_id"],
                                )
                            }
                        },
                    },
                    "422": _returns("No such conversation or a bad reason (HOLD_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/conversations/{conversation_id}/holds/release": {
            "post": {
                "operationId": "releaseHolds",
                "summary": "Release every active legal hold on the conversation. Audited "
                "(`hold.released`, with the reason). 409 `NO_ACTIVE_HOLD`: there was none.",
                "parameters": [_param("ConversationId")],
                "requestBody": _HOLD_REASON,
                "responses": {
                    "200": {
                        "description": "The released holds' ids.",
                        "content": {
                            "application/json": {
                                "schema": _object(
                                    {
                                        "released": {"type": "array", "items": {"type": "integer"}},
                                        "conversation_id": _UUID,
                                    },
                                    ["released", "conversation_id"],
                                )
                            }
                        },
                    },
                    "409": _returns("No active hold on the conversation (NO_ACTIVE_HOLD)."),
                    "422": _returns("A reason over 128 characters (HOLD_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/tokens": {
            "get": {
                "operationId": "listTokens",
                "summary": "Every token of this API, oldest first, as `gateway tokens list "
                "--json` shows them: never the token itself. Administrators.",
                "responses": {
                    "200": _answer(
                        "The tokens.",
                        {
                            "tokens": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "id": {"type": "integer"},
                                        "label": _STR,
                                        "roles": {"type": "array", "items": _STR},
                                        "state": {
                                            "type": "string",
                                            "enum": ["active", "expired", "revoked"],
                                        },
                                        "created_at": _STR,
                                        "expires_at": _NULLABLE_STR,
                                        "revoked_at": _NULLABLE_STR,
                                        "last_used_at": _NULLABLE_STR,
                                    }
                                ),
                            }
                        },
                    ),
                    **_COMMON,
                },
            },
            "post": {
                "operationId": "addToken",
                "summary": "Add a token for this API with these roles; it is answered once, only "
                "its SHA-256 is kept. Audited (`token.created`). 422 `TOKEN_REFUSED`: a bad "
                "label, role or expiry. Administrators.",
                "requestBody": _json_body(
                    {
                        "label": {"type": "string", "minLength": 1, "maxLength": 64},
                        "roles": {"type": "array", "items": _STR, "minItems": 1},
                        "expires_in_days": {"type": ["integer", "null"], "minimum": 1},
                    },
                    ["label", "roles"],
                ),
                "responses": {
                    "201": _answer(
                        "The token (shown once), its number and expiry.",
                        {
                            "token_id": {"type": "integer"},
                            "token": _STR,
                            "expires_at": _NULLABLE_STR,
                        },
                    ),
                    "422": _returns("A bad label, role or expiry (TOKEN_REFUSED)."),
                    **_COMMON,
                },
            },
        },
        "/api/v1/tokens/{token_id}/revoke": {
            "post": {
                "operationId": "revokeToken",
                "summary": "Stop a token at once. Audited (`token.revoked`). 422 `TOKEN_REFUSED`: "
                "unknown or already revoked. Administrators.",
                "parameters": [_path("token_id", {"type": "string", "pattern": "^[0-9]{1,18}$"})],
                "responses": {
                    "200": _answer(
                        "Revoked.",
                        {"token_id": {"type": "integer"}, "revoked": {"type": "boolean"}},
                    ),
                    "422": _returns("Unknown or already revoked (TOKEN_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/users": {
            "get": {
                "operationId": "listUsers",
                "summary": "The console's users by name, as `gateway users list --json` shows "
                "them: never a password's hash. Administrators.",
                "responses": {
                    "200": _answer(
                        "The users.",
                        {
                            "users": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "username": _STR,
                                        "roles": {"type": "array", "items": _STR},
                                        "disabled": {"type": "boolean"},
                                        "locked": {"type": "boolean"},
                                        "locked_until": _NULLABLE_STR,
                                        "failed_attempts": {"type": "integer"},
                                        "created_at": _STR,
                                        "last_login_at": _NULLABLE_STR,
                                    }
                                ),
                            }
                        },
                    ),
                    **_COMMON,
                },
            },
            "post": {
                "operationId": "addUser",
                "summary": "Add a console user with these roles; the password must pass the "
                "console's rules and is stored hashed. Audited (`user.added`). `USER_REFUSED` "
                "(409 taken, 422 invalid or weak). Administrators.",
                "requestBody": _json_body(
                    {
                        "username": _STR,
                        "password": _STR,
                        "roles": {"type": "array", "items": _STR, "minItems": 1},
                    },
                    ["username", "password", "roles"],
                ),
                "responses": {
                    "201": _answer(
                        "Added.", {"username": _STR, "roles": {"type": "array", "items": _STR}}
                    ),
                    "409": _returns("The name is taken (USER_REFUSED, rule USERNAME_TAKEN)."),
                    "422": _returns("A bad name, role or a weak password (USER_REFUSED)."),
                    **_COMMON,
                },
            },
        },
        "/api/v1/users/{username}/disable": {
            "post": {
                "operationId": "disableUser",
                "summary": "Disable a console user: sign-in refused, open sessions end. Audited "
                "(`user.disabled`). 404 `USER_REFUSED`: no such user. Administrators.",
                "parameters": [_path("username", {"type": "string", "maxLength": 64})],
                "responses": {
                    "200": _answer(
                        "Disabled.", {"username": _STR, "disabled": {"type": "boolean"}}
                    ),
                    "404": _returns("No such user (USER_REFUSED, rule USER_NOT_FOUND)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/keys/{role}/generations": {
            "post": {
                "operationId": "rotateKey",
                "summary": "Make a new PENDING generation of a key, with the subject of the one "
                "in force: certified by the node's demo CA if its keys folder holds one, else "
                "with a certificate request written beside it (`gateway keys import` then). "
                "Audited (`key.rotated`). 422 `KEY_REFUSED`. Administrators.",
                "parameters": _KEY_PATH[:1],
                "requestBody": _json_body(
                    {
                        "name": _STR,
                        "algorithm": {"type": "string", "enum": [str(k) for k in KeySpec]},
                    },
                    [],
                ),
                "responses": {
                    "201": _answer(
                        "Made: its stem, number, algorithm, whether the demo CA certified it.",
                        {
                            "key": _STR,
                            "generation": {"type": "integer"},
                            "algorithm": _STR,
                            "certified_by_demo_ca": {"type": "boolean"},
                        },
                    ),
                    "422": _returns("Refused as asked (KEY_REFUSED); the message names the rule."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/keys/publications": {
            "post": {
                "operationId": "publishKeys",
                "summary": "The certificates the depositary must list in the next directory "
                "version (PEM, with role, status and SHA-256). Audited "
                "(`key.publication.exported`). Administrators.",
                "responses": {
                    "200": _answer(
                        "The certificates.",
                        {
                            "certificates": {
                                "type": "array",
                                "items": _object(
                                    {
                                        "role": _STR,
                                        "key": _STR,
                                        "status": _STR,
                                        "sha256": _STR,
                                        "not_after": _STR,
                                        "pem": _STR,
                                    }
                                ),
                            }
                        },
                    ),
                    "422": _returns("Refused as asked (KEY_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/kek/rotations": {
            "post": {
                "operationId": "rotateKek",
                "summary": "Rotate the KEK ring: a new KEK, in force from `at` (default now). "
                "`confirm` must name the KEK in force (422 `KEY_REFUSED`, rule "
                "`CONFIRMATION_MISMATCH`), so a replayed or mistaken request changes nothing. "
                "Audited (`kek.rotated`); then POST /api/v1/kek/rewraps. Administrators.",
                "requestBody": _json_body({"confirm": _STR, "at": _STR}, ["confirm"]),
                "responses": {
                    "201": _answer(
                        "The new KEK, from when, and the one it replaces.",
                        {"kek_id": _STR, "active_from": _STR, "previous": _NULLABLE_STR},
                    ),
                    "422": _returns("Refused as asked (KEY_REFUSED); the message names the rule."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/kek/rewraps": {
            "post": {
                "operationId": "rewrapKeys",
                "summary": "Re-wrap every stored data key under the KEK in force (resumable: "
                "run it again when `complete` is false). Audited "
                "(`kek.rewrap.finished`). Administrators.",
                "responses": {
                    "200": _answer(
                        "How many were re-wrapped, and the KEKs nothing uses any more.",
                        {
                            "kek_id": _STR,
                            "rewrapped": {"type": "integer"},
                            "complete": {"type": "boolean"},
                            "retired": {"type": "array", "items": _STR},
                        },
                    ),
                    "422": _returns("Refused as asked (KEY_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/kek/{kek_id}/destruction": {
            "get": {
                "operationId": "kekDestructionNotice",
                "summary": "What destroying a retired KEK ends, as `gateway keys destroy-kek` "
                "prints it: what it still wraps (destroying is refused then), the read purposes "
                "sealed under it, the backups it leaves unreadable; and `acknowledge`, the value "
                "of these warnings a POST must send back. Changes nothing. Administrators.",
                "parameters": [_KEK_ID],
                "responses": {
                    "200": _answer(
                        "The warnings and their acknowledge value.", _DESTRUCTION_NOTICE
                    ),
                    "422": _returns("No such KEK, or destroyed already (KEY_REFUSED)."),
                    **_COMMON,
                },
            },
            "post": {
                "operationId": "destroyKek",
                "summary": "Destroy a retired KEK, irreversibly: `confirm` must be its id and "
                "`acknowledge` the value GET answered with the warnings; a mismatch, or warnings "
                "changed since, is 422 `KEY_REFUSED` rule `CONFIRMATION_MISMATCH` with the "
                "warnings as they are now (`warnings`, `acknowledge`). Refused for the KEK in "
                "force, one scheduled, one left within the grace, or one still wrapping stored "
                "keys. Audited (`kek.destroyed`). Administrators.",
                "parameters": [_KEK_ID],
                "requestBody": _json_body(
                    {"confirm": _STR, "acknowledge": _STR}, ["confirm", "acknowledge"]
                ),
                "responses": {
                    "200": _answer(
                        "Destroyed.", {"kek_id": _STR, "destroyed": {"type": "boolean"}}
                    ),
                    "422": _returns(
                        "Refused as asked (KEY_REFUSED); `rule` CONFIRMATION_MISMATCH carries "
                        "`warnings` and `acknowledge`."
                    ),
                    **_COMMON,
                },
            },
        },
        "/api/v1/keys/{role}/generations/{generation}/certificate": {
            "post": {
                "operationId": "importCertificate",
                "summary": "Install the certificate a CA issued for a generation's request, as "
                "`gateway keys import` does: the body is the certificate, PEM (the certificate, "
                "then its issuers) or DER, at most 256 KiB (413 `BODY_TOO_LARGE`). It must "
                "certify that generation's key, name this body, serve the role and not have "
                "expired (422 `KEY_REFUSED`, the message names what and what to do). Audited "
                "(`key.certificate.imported`; not for generation 1, the node's set-up). "
                "`name` names an official's key. Administrators.",
                "parameters": [
                    *_KEY_PATH,
                    _query("name", _STR, "An official's key name (role `official`)."),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {"schema": {"type": "string"}}
                        for media in ("application/x-pem-file", "application/pkix-cert")
                    },
                },
                "responses": {
                    "201": _answer(
                        "Installed: the generation's stem and the certificate.",
                        {
                            "key": _STR,
                            "subject": _STR,
                            "not_after": _STR,
                            "certificate_sha256": _STR,
                            "chain_length": {"type": "integer"},
                        },
                    ),
                    "413": _returns("Over 256 KiB (BODY_TOO_LARGE)."),
                    "422": _returns("Refused as asked (KEY_REFUSED); the message names the rule."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/keys/{role}/generations/{generation}/activate": {
            "post": {
                "operationId": "activateKey",
                "summary": "Schedule the switch to a key generation at `at` (`now` or ISO 8601), "
                "once the directory in force lists its certificate (or `force` says why not). "
                "Audited (`key.activated`). 422 `KEY_REFUSED`. Administrators.",
                "parameters": _KEY_PATH,
                "requestBody": _json_body(
                    {"at": _STR, "name": _STR, "force": _STR},
                    ["at"],
                ),
                "responses": {
                    "200": _answer(
                        "Scheduled: the generation's stem, when, and notes for the operator.",
                        {"key": _STR, "at": _STR, "notes": {"type": "array", "items": _STR}},
                    ),
                    "422": _returns("Refused as asked (KEY_REFUSED); the message names the rule."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/keys/{role}/generations/{generation}/revoke": {
            "post": {
                "operationId": "revokeKey",
                "summary": "Revoke a key generation now (or earlier, with `at`); a routine reason "
                "is refused while documents it signed wait in the outbox. `confirm` must name "
                "the generation as its key files are named (`seal.2`; 422 `KEY_REFUSED`, rule "
                "`CONFIRMATION_MISMATCH`): a revocation cannot be undone. Audited "
                "(`key.revoked`). 422 `KEY_REFUSED`. Administrators.",
                "parameters": _KEY_PATH,
                "requestBody": _json_body(
                    {
                        "reason": {"type": "string", "enum": [str(r) for r in RevocationReason]},
                        "confirm": _STR,
                        "name": _STR,
                        "at": _STR,
                    },
                    ["reason", "confirm"],
                ),
                "responses": {
                    "200": _answer("Revoked.", {"key": _STR, "at": _STR, "reason": _STR}),
                    "422": _returns("Refused as asked (KEY_REFUSED); the message names the rule."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/audit/verifications": {
            "post": {
                "operationId": "verifyAudit",
                "summary": "Verify the whole audit trail now, as `gateway audit verify` does: the "
                "hash chain, every stored signed checkpoint against the node's seal generations, "
                "the purge reports and the tombstones. Recorded (`audit.verified`), intact or "
                "not. Auditors.",
                "responses": {
                    "201": _answer(
                        "The outcome: intact, or the first event where it breaks and how.",
                        {
                            "intact": {"type": "boolean"},
                            "events_checked": {"type": "integer"},
                            "last_seq": {"type": "integer"},
                            "checkpoints_checked": {"type": "integer"},
                            "broken_at": {"type": ["integer", "null"]},
                            "tampering": _STR,
                            "reason": _STR,
                        },
                    ),
                    **_COMMON,
                },
            }
        },
        "/api/v1/audit/checkpoints": {
            "post": {
                "operationId": "checkpointAudit",
                "summary": "Sign the audit chain's head with the node's seal now, as `gateway "
                "audit checkpoint` does, and answer the checkpoint line for the caller to keep "
                "off the node (`gateway audit verify --checkpoint FILE` checks the trail against "
                "it there). JSON with `line`; with `Accept: application/jsonl` the line itself, "
                "as a file to save. Recorded (`audit.checkpoint`). Auditors.",
                "responses": {
                    "201": {
                        "description": "The checkpoint and its line.",
                        "headers": {
                            "Content-Disposition": {
                                "schema": _STR,
                                "description": "with application/jsonl: attachment; "
                                'filename="audit-checkpoint-<id>.jsonl"',
                            }
                        },
                        "content": {
                            "application/json": {
                                "schema": _object(
                                    {
                                        "checkpoint_id": {"type": "integer"},
                                        "seq": {"type": "integer"},
                                        "hash": _STR,
                                        "at": _STR,
                                        "line": _STR,
                                    }
                                )
                            },
                            "application/jsonl": {"schema": {"type": "string"}},
                        },
                    },
                    "422": _returns("No seal to sign with (KEY_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/audit/export": {
            "get": {
                "operationId": "exportAudit",
                "summary": "A segment of the audit trail as JSON Lines (`application/jsonl`): a "
                "header (format `gateway-audit-export/1`, the node, the chain's head, the hash "
                "rule), then one line per event with `prev_hash` and `hash`, as `gateway audit "
                "export` writes it; `gateway audit verify-export FILE` checks it away from the "
                "node. `from`/`to`: an event number (`from <= seq <= to`) or an ISO 8601 time "
                "(`from <= at < to`). Recorded (`audit.exported`). Auditors.",
                "parameters": [
                    {"name": "from", "in": "query", "schema": _STR},
                    {"name": "to", "in": "query", "schema": _STR},
                ],
                "responses": {
                    "200": {
                        "description": "The segment, streamed.",
                        "content": {"application/jsonl": {"schema": {"type": "string"}}},
                    },
                    **_COMMON,
                },
            }
        },
        "/api/v1/directory": {
            "post": {
                "operationId": "importDirectory",
                "summary": "Install a new version of the depositary's signed directory of bodies "
                "(the XML file as the body), as `gateway directory import` does: its signature "
                "must chain to `[trust] depositary_ca_file` and its version follow the installed "
                "one (422 `DOCUMENT_REJECTED`, rules `DIRECTORY_*`, e.g. `DIRECTORY_ROLLBACK`). "
                "The node takes it at once. Recorded (`directory.imported`). Administrators.",
                "requestBody": {
                    "required": True,
                    "content": {"application/xml": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "201": _answer(
                        "Installed.",
                        {"version": {"type": "integer"}, "already": {"type": "boolean"}},
                    ),
                    "200": _answer(
                        "That very file was installed already.",
                        {"version": {"type": "integer"}, "already": {"type": "boolean"}},
                    ),
                    "422": _returns(
                        "Not installed (DOCUMENT_REJECTED): the problems name the rule.", "Rejected"
                    ),
                    **_COMMON,
                },
            }
        },
        "/api/v1/purge-runs": {
            "post": {
                "operationId": "runPurge",
                "summary": "Run the retention purge now (CIS Art. 9.6), signed with the node's "
                "seal, under the node-wide purge lock. Audited (`purge.started`, "
                "`purge.finished`). 409 `PURGE_LOCKED`; 503 `PURGE_REFUSED`. Administrators.",
                "responses": {
                    "201": _answer(
                        "The run: its id, state, how many were purged, failed batches by code.",
                        {
                            "run_id": _STR,
                            "state": _STR,
                            "purged": {"type": "integer"},
                            "errors": {
                                "type": "object",
                                "additionalProperties": {"type": "integer"},
                            },
                        },
                    ),
                    "409": _returns("The purge runs elsewhere on the node (PURGE_LOCKED)."),
                    "503": _returns("No seal or a bad retention policy (PURGE_REFUSED)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/purge-runs/{run_id}/report": {
            "get": {
                "operationId": "getPurgeReport",
                "summary": "A purge run's signed report as stored, as `gateway purge report "
                "--out` writes it, to check away from the node with openssl alone: `report` is "
                "the exact signed text (write it as UTF-8), `signature` the DER signature in "
                "base64, `certificate` the seal's certificate in PEM (compare it with the "
                "directory of bodies before trusting it), `timestamp` the TSA's RFC 3161 token "
                "over the signature in base64 (`openssl ts -verify`), null without one. "
                "Auditors.",
                "parameters": [_path("run_id", _UUID)],
                "responses": {
                    "200": _answer(
                        "The signed report, its signature and the certificate beside it.",
                        {
                            "run_id": _STR,
                            "report": _STR,
                            "signature": _STR,
                            "certificate": _STR,
                            "timestamp": _NULLABLE_STR,
                        },
                    ),
                    "404": _returns("No signed report is stored for the run (NOT_FOUND)."),
                    **_COMMON,
                },
            }
        },
        "/api/v1/purge-runs/{run_id}/report-verifications": {
            "post": {
                "operationId": "verifyPurgeReport",
                "summary": "Verify a purge run's signed report now, as `gateway purge "
                "verify-report` does: the seal signature by one of the node's seal generations, "
                "dated inside that generation's window (a report of a generation revoked for key "
                "compromise only with a trusted checkpoint made before the revocation), the run "
                "it names and its tombstones. Records nothing. Auditors.",
                "parameters": [_path("run_id", _UUID)],
                "responses": {
                    "200": _answer(
                        "The verdict and the signed report (its fields as signed).",
                        {
                            "run_id": _STR,
                            "confirmed": {"type": "boolean"},
                            "reason": _STR,
                            "report": {"type": "object"},
                        },
                    ),
                    "404": _returns("No signed report is stored for the run (NOT_FOUND)."),
                    **_COMMON,
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "getHealth",
                "summary": "Liveness.",
                "security": [],
                "responses": {"200": _returns("The node answers.", "Health")},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "getMetrics",
                "summary": "Prometheus metrics; labels are codes only.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def _implied_answers(operation: dict[str, Any]) -> dict[str, Any]:
    """The answers an operation gets from the local API's shared code rather than its own
    handler: the HTTP parser and the parameter readers (400, any operation), the JSON reader
    (413, 415 and 422 for a JSON body) and the store's faults (503, every authenticated
    operation). Added here, so that none can be forgotten."""
    implied: dict[str, Any] = {"400": _resp("BadRequest")}
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        implied |= {
            "413": _resp("JsonTooLarge"),
            "415": _resp("NotJson"),
            "422": _resp("InvalidCharacter"),
        }
    if operation.get("security") != []:
        implied["503"] = _resp("Unavailable")
    return implied


def _with_implied_answers(paths: dict[str, Any]) -> dict[str, Any]:
    """``paths`` with each operation's implied answers added where it names none of its own
    for that status (its own description says more, e.g. POST /messages's 422)."""
    for item in paths.values():
        for operation in item.values():
            operation["responses"] = _implied_answers(operation) | operation["responses"]
    return paths


def build_openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the local API (a new dict on each call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Exchange gateway — local API",
            "version": API_VERSION,
            "description": "How a body's case system talks to its node. See docs/local-api.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8081"}],
        "security": [{"bearerAuth": []}],
        "paths": _with_implied_answers(_paths()),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token of the node: Authorization: Bearer <token>.",
                }
            },
            "schemas": _SCHEMAS,
            "parameters": _PARAMETERS,
            "responses": _RESPONSES,
        },
    }
