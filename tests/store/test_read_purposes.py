"""A read's purpose sealed for the audit trail (gateway.store.read_purposes): it opens only in
the event it was sealed for, under a KEK of the ring, and never appears in clear."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from gateway.crypto.keys.kek import FileKek, KekRing
from gateway.store.read_purposes import (
    DIGEST_KEY,
    SEALED_KEY,
    PurposeUnreadable,
    open_purpose,
    purpose_details,
)

PURPOSE = "Производство № 4711/26/77001-ИП: сведения о счетах должника"
EVENT = {"kind": "document.read", "actor": "token:case", "subjects": {"message": "m-1"}}


def test_sealed_then_opened_in_its_own_event(ring: KekRing) -> None:
    details = purpose_details(PURPOSE, ring, **EVENT)
    assert details[DIGEST_KEY] == hashlib.sha256(PURPOSE.encode()).hexdigest()
    assert PURPOSE not in details[SEALED_KEY]
    assert open_purpose(details, ring, **EVENT) == PURPOSE
    # A fresh data key and nonce each time: equal purposes do not give equal ciphertexts.
    assert purpose_details(PURPOSE, ring, **EVENT)[SEALED_KEY] != details[SEALED_KEY]


@pytest.mark.parametrize(
    "other",
    [
        {**EVENT, "subjects": {"message": "m-2"}},
        {**EVENT, "actor": "token:other"},
        {**EVENT, "kind": "conversation.read"},
    ],
)
def test_moved_to_another_event_it_does_not_open(ring: KekRing, other: dict) -> None:
    details = purpose_details(PURPOSE, ring, **EVENT)
    with pytest.raises(PurposeUnreadable):
        open_purpose(details, ring, **other)


def test_a_changed_digest_or_ciphertext_or_an_unknown_kek_does_not_open(ring: KekRing) -> None:
    details = purpose_details(PURPOSE, ring, **EVENT)
    digest = {**details, DIGEST_KEY: hashlib.sha256(b"other").hexdigest()}
    with pytest.raises(PurposeUnreadable):
        open_purpose(digest, ring, **EVENT)
    head, ciphertext = details[SEALED_KEY].rsplit(".", 1)
    flipped = {
        **details,
        SEALED_KEY: f"{head}.{'B' if ciphertext[0] == 'A' else 'A'}{ciphertext[1:]}",
    }
    with pytest.raises(PurposeUnreadable):
        open_purpose(flipped, ring, **EVENT)
    with pytest.raises(PurposeUnreadable):
        open_purpose({**details, SEALED_KEY: "v1.x"}, ring, **EVENT)
    stranger = KekRing.single(FileKek("kek-other", secrets.token_bytes(32)))
    with pytest.raises(PurposeUnreadable, match="cannot be opened"):
        open_purpose(details, stranger, **EVENT)
