"""Every table of the store, in one SQLAlchemy Core ``MetaData``.

Rule for every column outside an encrypted payload: it holds no personal data in clear. Parties
are body ids (``RU-FSSP``), kinds and states are codes, dates are dates; a debtor is findable
only through a keyed HMAC tag (``search_tags``), never by name, and the list's case number and
debtor are a sealed display value (``conversations.display``), never clear text.

Indexes are chosen for the console's keyset pages at a million rows: every filter column leads
a composite index that ends with the page order ``(opened_at, conversation_id)``.

A message's and a conversation's own rows (keys, reports, attachments and their segments,
outbox rows and their attempts; machine, search tags, late answers, resends, originals) name
them without a foreign key (migration 0020): the code that stores a message writes them in its
transaction, and the purge, the only code deleting messages and conversations, deletes them
set-based itself (``gateway.store.purge``), where a foreign key cost one query per deleted
row and table on PostgreSQL. ``messages.conversation_id`` keeps its foreign key; the tombstones'
run id has none either (migration 0022: a check per purged message).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

ID_LENGTH = 36
"""Message and conversation ids are UUIDs in their 36-character text form (the envelope's)."""
CODE_LENGTH = 64
"""Kinds, states, agreement ids, body ids, policy names, error codes: short codes."""
HASH_BYTES = 32
"""SHA-256 and HMAC-SHA-256 outputs."""


class UtcDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC ``datetime`` on both dialects: ``timestamptz`` on PostgreSQL, a fixed-width
    text on SQLite (which sorts like the instant). Naive datetimes are refused, because a naive
    time in a store shared by nodes in several time zones is a bug waiting to happen."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite makes only an INTEGER PRIMARY KEY an auto-incrementing row id.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _message_header() -> tuple[sa.Column[Any], ...]:
    """A message's header columns in clear, the same in ``messages`` and in the ``tombstones``
    that keep them once the message is purged (fresh columns on each call: one table each)."""
    return (
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("agreement", sa.String(CODE_LENGTH), nullable=False),
        sa.Column("kind", sa.String(CODE_LENGTH), nullable=False),
        sa.Column("sender", sa.String(CODE_LENGTH), nullable=False),
        sa.Column("recipient", sa.String(CODE_LENGTH), nullable=False),
        sa.Column("created", UtcDateTime, nullable=False),
        sa.Column("stored_at", UtcDateTime, nullable=False),
    )


conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("conversation_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("agreement", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("requesting_party", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("requested_party", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("opening_kind", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("last_kind", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("state", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("confidential", sa.Boolean(), nullable=False),
    sa.Column("deadline", sa.Date, nullable=True),
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("proceeding_closed_at", UtcDateTime, nullable=True),
    # SC Art. 5.2: a request "в случаях, не терпящих отлагательства"; read by lists and reminders.
    sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The list's case number and masked debtor, sealed at record time under the search index's
    # display key (gateway.exchange.listing); NULL: not indexed yet (made before migration 0013).
    sa.Column("display_nonce", sa.LargeBinary(12), nullable=True),
    sa.Column("display", sa.LargeBinary, nullable=True),
    # Each filter leads an index that ends in the page order, then ``state``: a page is one
    # index range walked backwards, and counting by state under a filter reads only the index.
    sa.Index("ix_conversations_page", "opened_at", "conversation_id"),
    sa.Index("ix_conversations_state_page", "state", "opened_at", "conversation_id"),
    *(
        sa.Index(f"ix_conversations_{name}_page", column, "opened_at", "conversation_id", "state")
        for name, column in (
            ("agreement", "agreement"),
            ("requesting", "requesting_party"),
            ("requested", "requested_party"),
            ("kind", "opening_kind"),
            ("confidential", "confidential"),
        )
    ),
    sa.Index("ix_conversations_deadline", "deadline", "opened_at", "conversation_id", "state"),
    # The overview's near-deadline list: open states only, by due date (closed conversations
    # with long-past due dates, most of a million, are never walked).
    sa.Index(
        "ix_conversations_state_deadline", "state", "deadline", "opened_at", "conversation_id"
    ),
)

conversation_machines = sa.Table(
    "conversation_machines",
    metadata,
    sa.Column("conversation_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("machine", sa.Text, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
"""The conversation state machine's state as JSON (ids, states, instants, codes only)."""

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(ID_LENGTH), nullable=False, unique=True),
    sa.Column(
        "conversation_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("conversations.conversation_id"),
        nullable=False,
    ),
    sa.Column("in_reply_to", sa.String(ID_LENGTH), nullable=True),
    *_message_header(),
    sa.Column("confidential", sa.Boolean(), nullable=False),
    sa.Column("document_sha256", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.Column("document_size", sa.Integer, nullable=False),
    sa.Column("payload_nonce", sa.LargeBinary(12), nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("direction IN ('in', 'out')", name="direction"),
    sa.Index("ix_messages_conversation", "conversation_id", "created", "id"),
    sa.Index("ix_messages_retention", "stored_at", "id"),
)

message_keys = sa.Table(
    "message_keys",
    metadata,
    sa.Column("message_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("kek_id", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("wrapped_dek", sa.LargeBinary(64), nullable=False),
    sa.Column("wrapped_at", UtcDateTime, nullable=False),
    sa.Column("period_key_id", sa.String(CODE_LENGTH), nullable=True),
    sa.Index("ix_message_keys_kek", "kek_id", "message_id"),
    sa.Index("ix_message_keys_period", "period_key_id"),
)
"""``kek_id``: the key that wrapped ``wrapped_dek`` — a retention period key (then also in
``period_key_id``) or, for a row written before 0012 and not yet re-wrapped, a KEK (then
``period_key_id`` is NULL). No foreign key to ``period_keys``: a row whose period key was
destroyed is what a shredded message looks like until the purge deletes it."""

period_keys = sa.Table(
    "period_keys",
    metadata,
    sa.Column("key_id", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("period", sa.String(16), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("kek_id", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("purged_before", sa.Integer, nullable=False),
    sa.UniqueConstraint("period", "generation", name="uq_period_keys_period_generation"),
)
"""Retention period keys (``gateway.store.period_keys``): one random AES-256 key per storage
week (``2026-W49``) and generation, wrapped by the KEK ring; the data keys of the messages
stored that week are wrapped under it. Deleting a row destroys every data key under it.
``purged_before``: tombstones of the week when the key was made (more now: the key is dirty)."""

attachments = sa.Table(
    "attachments",
    metadata,
    sa.Column("attachment_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("message_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("ordinal", sa.Integer, nullable=True),
    sa.Column("complete", sa.Boolean(), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.LargeBinary(HASH_BYTES), nullable=True),
    sa.Column("segment_prefix", sa.LargeBinary(8), nullable=False),
    sa.Column("kek_id", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("wrapped_key", sa.LargeBinary(96), nullable=False),
    sa.Column("meta_nonce", sa.LargeBinary(12), nullable=False),
    sa.Column("meta", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("upload_length", sa.BigInteger, nullable=True),
    sa.Column("held_for", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("claimed_sha256", sa.LargeBinary(HASH_BYTES), nullable=True),
    sa.Column("held_since", UtcDateTime, nullable=True),
    sa.UniqueConstraint("message_id", "ordinal"),
    sa.Index("ix_attachments_unlinked", "message_id", "created_at"),
    sa.Index("ix_attachments_held", "held_for", "claimed_sha256"),
)
"""One attachment: staged (``message_id`` NULL: an upload not yet submitted, or a part still
streaming in from a peer; its part key wrapped by the KEK ``kek_id``) or a message's
(``kek_id`` NULL: its part key wrapped by the message's data key). Name, media type and
language are sealed in ``meta`` (a file name can name a person); size and SHA-256 are the
signed header's. The bytes are in ``attachment_segments`` (gateway.crypto.segments).
``upload_length``: the whole length a resumable upload or a peer's held part declared (NULL: an
upload in one request, or a part from a peer that declared none); until it is complete its
bytes so far are its full, non-final segments.
``held_for``: the peer whose delivery brought the part, held for that delivery's retry (it
declared ``upload_length`` and ``claimed_sha256`` before the bytes came); NULL once linked and
for everything else (docs/attachments.md, "Resumable deliveries"). ``held_since``: when that
delivery broke off; NULL while the part streams in or a retry has taken it on (such a part is
neither offered to another retry nor trimmed)."""

attachment_segments = sa.Table(
    "attachment_segments",
    metadata,
    sa.Column("attachment_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("segment_no", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
)
"""An attachment's bytes as AES-GCM segments of 64 KiB, in the database so that backups,
purge and crypto-shredding cover them like every other part of a message."""

verification_reports = sa.Table(
    "verification_reports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("indication", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("sub_indication", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("report_nonce", sa.LargeBinary(12), nullable=False),
    sa.Column("report", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("purpose IN ('receipt', 'reverify')", name="purpose"),
    sa.Index("ix_verification_reports_message", "message_id", "recorded_at", "id"),
)
"""Signature verification reports of a message: at receipt, and each time it is verified again.
The ETSI indication and sub-indication stay in clear for list views; the full report (signer
subjects are officials' personal data) is encrypted under the message's own data key, so
shredding the message shreds its reports."""

search_tags = sa.Table(
    "search_tags",
    metadata,
    sa.Column("tag", sa.LargeBinary(HASH_BYTES), primary_key=True),
    sa.Column("conversation_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Index("ix_search_tags_conversation", "conversation_id"),
)
"""The conversation search index: HMAC tags of the debtor's name and of the case number
(``gateway.crypto.at_rest.search_tag``) → conversation. A tag, not a name."""

secret_keys = sa.Table(
    "secret_keys",
    metadata,
    sa.Column("name", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("kek_id", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary(64), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("destination", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("claim_expires_at", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(CODE_LENGTH), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
    sa.UniqueConstraint("message_id", "destination"),
    sa.Index("ix_outbox_due", "state", "next_attempt_at", "id"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.BigInteger, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("error_code", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("http_status", sa.Integer, nullable=True),
    sa.UniqueConstraint("outbox_id", "attempt"),
)

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("message_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("receipt_message_id", sa.String(ID_LENGTH), nullable=False, unique=True),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("code", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.CheckConstraint("outcome IN ('accepted', 'rejected')", name="outcome"),
)

late_answers = sa.Table(
    "late_answers",
    metadata,
    sa.Column("message_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("conversation_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("due", sa.Date, nullable=False),
    sa.Column("answered_on", sa.Date, nullable=False),
    sa.Column("days_late", sa.Integer, nullable=False),
    sa.Column("working_days", sa.Boolean, nullable=False),
    sa.Column("recorded_at", UtcDateTime, nullable=False),
    sa.Column("reported_at", UtcDateTime, nullable=True),
    sa.Index("ix_late_answers_conversation", "conversation_id"),
    sa.Index("ix_late_answers_unreported", "reported_at"),
)
"""Answers (Response, Refusal) made after the due date with no delay notice covering them
(CIS Art. 12 para. 3; SC Art. 6.1): accepted, flagged on both sides (gateway.rules.clock)."""

resends = sa.Table(
    "resends",
    metadata,
    sa.Column("message_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("original_id", sa.String(ID_LENGTH), nullable=False, unique=True),
    sa.Column("conversation_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("resent_at", UtcDateTime, nullable=False),
    sa.Index("ix_resends_conversation", "conversation_id"),
)
"""A document the node sent again, corrected or not, as a new message after the peer refused
the original for good (signed Rejection) or its delivery was given up (dead letter): the new
message (``message_id``) and the one it replaces (``original_id``, each resent at most once).
Local only: the peer sees an ordinary new message."""

originals = sa.Table(
    "originals",
    metadata,
    sa.Column("message_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("conversation_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("sent_on", sa.Date, nullable=True),
    sa.Column("tracking", sa.String(40), nullable=True),
    sa.Column("received_on", sa.Date, nullable=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_originals_conversation", "conversation_id"),
)
"""The paper original of a document sent by post after it (CIS Art. 10 para. 1): when it was
sent and its tracking number, when it was received (gateway.store.originals)."""

legal_holds = sa.Table(
    "legal_holds",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("conversation_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("reference", sa.String(128), nullable=False),
    sa.Column("placed_by", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("placed_at", UtcDateTime, nullable=False),
    sa.Column("released_by", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("released_at", UtcDateTime, nullable=True),
    sa.Index("ix_legal_holds_conversation", "conversation_id", "released_at"),
)

purge_runs = sa.Table(
    "purge_runs",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("policy", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("actor", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("finished_at", UtcDateTime, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("purged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("held", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error_code", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("policy_sha256", sa.String(2 * HASH_BYTES), nullable=True),
)
"""``policy_sha256``: SHA-256 (hex) of the retention policy set the run applied; the next run
compares its own with it and audits a change (``retention.policy_changed``)."""

tombstones = sa.Table(
    "tombstones",
    metadata,
    sa.Column("message_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("conversation_id", sa.String(ID_LENGTH), nullable=False),
    *_message_header(),
    sa.Column("purged_at", UtcDateTime, nullable=False),
    sa.Column("document_sha256", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.Column("policy", sa.String(CODE_LENGTH), nullable=False),
    # No foreign key (migration 0022): one trigger per purged message on PostgreSQL; only
    # the purge writes tombstones, after reading its running run in the same transaction.
    sa.Column("purge_run_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("policy_sha256", sa.String(2 * HASH_BYTES), nullable=True),
    sa.Column("purge_batch", sa.Integer, nullable=True),
    sa.Index("ix_tombstones_conversation", "conversation_id"),
    sa.Index("ix_tombstones_stored_at", "stored_at"),
    sa.Index("ix_tombstones_run_batch", "purge_run_id", "purge_batch"),
)
"""What remains of a purged message. Each row is bound into the audit chain by the
``purge.batch`` event of its batch (``purge_batch``: the batch's number in its run; see
``gateway.store.purge.batch_digest``), so that a row edited, deleted or inserted later is named
by ``gateway audit verify``. ``policy_sha256``: of the retention policy that expired it (None
for rows purged by hand or before 0006); ``purge_batch`` is None for rows purged before 0017."""

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("actor", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("kind", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("subjects", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.Column("hash", sa.LargeBinary(HASH_BYTES), nullable=False),
)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(CODE_LENGTH), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("roles", sa.String(255), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False),
    sa.Column("failed_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("last_login_at", UtcDateTime, nullable=True),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.LargeBinary(HASH_BYTES), nullable=False, unique=True),
    sa.Column("label", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=True),
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Index("ix_api_tokens_user", "user_id"),
)

disclosures = sa.Table(
    "disclosures",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("disclosure_id", sa.String(ID_LENGTH), nullable=False, unique=True),
    sa.Column("message_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("conversation_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("agreement", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("category", sa.String(16), nullable=False),
    sa.Column("article", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("consent_request_id", sa.String(ID_LENGTH), nullable=True),
    sa.Column("actor", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("disclosed_at", UtcDateTime, nullable=False),
    sa.Column("document_sha256", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.Column("recipient_tag", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.Column("sealed_nonce", sa.LargeBinary(12), nullable=False),
    sa.Column("sealed", sa.LargeBinary, nullable=False),
    sa.CheckConstraint("category IN ('creditor', 'debtor', 'third-party')", name="category"),
    sa.Index("ix_disclosures_message", "message_id", "disclosed_at"),
    sa.Index("ix_disclosures_recipient", "recipient_tag", "disclosed_at"),
)
"""Disclosures of documents to others (CIS Art. 9.2–9.3; SC Art. 8.2). No foreign keys: the
record of a disclosure outlives the purge of what was disclosed. The recipient's name and the
stated purpose are personal data: they are sealed (``sealed``) under the store's disclosure key,
and the recipient is findable only through a keyed HMAC (``recipient_tag``)."""

purge_reports = sa.Table(
    "purge_reports",
    metadata,
    sa.Column("run_id", sa.String(ID_LENGTH), sa.ForeignKey("purge_runs.run_id"), primary_key=True),
    sa.Column("signed_at", UtcDateTime, nullable=False),
    sa.Column("report", sa.Text, nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    sa.Column("certificate", sa.LargeBinary, nullable=False),
    sa.Column("timestamp", sa.LargeBinary, nullable=True),
)
"""The signed report of a purge run (CIS Art. 9.6): ``report`` is canonical JSON (counts by
policy, duration, errors; codes and numbers only), ``signature`` the body's seal over its UTF-8
bytes, ``certificate`` the seal certificate (DER) that signed it, ``timestamp`` a TSA's RFC
3161 token over the signature's SHA-256 (``[tsa] url``; NULL without one)."""

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.LargeBinary(HASH_BYTES), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("signature", sa.LargeBinary, nullable=False),
    sa.Column("certificate", sa.LargeBinary, nullable=False),
    sa.Column("timestamp", sa.LargeBinary, nullable=True),
    sa.Index("ix_audit_checkpoints_seq", "seq"),
)
"""Signed audit chain heads: ``statement`` is canonical JSON of (body, seq, hash, time) signed
by the body's seal, so that truncating the chain and rewriting its tail is detectable;
``timestamp``, when a TSA is configured, an RFC 3161 token over the signature (migration 0024)."""

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("session_hash", sa.LargeBinary(HASH_BYTES), primary_key=True),
    sa.Column("csrf_token", sa.String(CODE_LENGTH), nullable=False),
    sa.Column("username", sa.String(CODE_LENGTH), nullable=True),
    sa.Column("roles", sa.String(255), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("purposes", sa.Text, nullable=False),
    sa.Column("flash", sa.Text, nullable=True),
    sa.Index("ix_console_sessions_expires_at", "expires_at"),
)
"""The console's sessions, shared by every process of a node (``gateway serve --workers N``,
or several hosts behind a balancer). Keyed by the SHA-256 of the cookie's random id: a copy of
the table signs nobody in. ``expires_at`` is the earlier of the idle and the absolute end, so
one indexed comparison finds live rows and the ones to delete. ``purposes`` is JSON
(conversation id -> purpose stated, when), the same text the audit trail records."""

conversation_counts = sa.Table(
    "conversation_counts",
    metadata,
    sa.Column("state", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("agreement", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("requesting_party", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("requested_party", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)
"""How many conversations there are per state, agreement and pair of parties (the direction:
a node is the requesting or the requested party), kept by :mod:`gateway.store.counts` in the
same transaction as each conversation opened, moved or purged. The console's overview reads
these few rows instead of counting a million."""

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("scope", sa.String(CODE_LENGTH), primary_key=True),
    sa.Column("idempotency_key", sa.String(200), primary_key=True),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)
"""The ``Idempotency-Key`` of each submission accepted with one (:mod:`gateway.store.idempotency`),
per actor (``scope``): the SHA-256 of the request as submitted and the answer given (JSON),
written in the submission's own transaction, so a retry after a lost answer (or a crash between
commit and answer) gets that answer and stores nothing twice. Kept for KEY_TTL."""
