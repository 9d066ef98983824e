"""One check of a delivery's sizes (gateway.model.limits.delivery_problems): what the sender
refuses at submission is what the recipient refuses at its door."""

from __future__ import annotations

from gateway.model.limits import delivery_problems

LIMITS = {"max_xml_bytes": 1000, "max_message_bytes": 10_000, "max_attachment_bytes": 6000}


def _codes(xml: int, parts: list[int]) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in delivery_problems("KZ-MJ", xml, parts, **LIMITS)]


def test_within_every_limit_nothing_is_said() -> None:
    assert _codes(1000, [6000, 3000]) == []


def test_each_limit_names_its_field() -> None:
    assert _codes(1001, []) == [("MESSAGE_TOO_LARGE", "/Envelope")]
    assert _codes(10, [10, 6001]) == [
        ("ATTACHMENT_TOO_LARGE", "/Envelope/Header/Attachments/Attachment[2]/Size")
    ]
    assert _codes(1000, [6000, 3001]) == [("MESSAGE_TOO_LARGE", "/Envelope/Header/Attachments")]


def test_the_refusal_names_the_recipient_and_its_published_value() -> None:
    (problem,) = delivery_problems("KZ-MJ", 10, [7000], **LIMITS)
    assert "KZ-MJ" in problem.message_en and "MaxAttachmentBytes = 6000" in problem.message_en
    assert problem.remedy_ru


def test_a_sealed_file_is_judged_by_its_size_and_the_delivery_by_its_bytes_on_the_wire() -> None:
    """A confidential file of exactly MaxAttachmentBytes passes (the receiver allows a sealed
    part its tags); its tags count in the delivery's total, as the receiver's door counts."""
    sealed = 6000 + 16
    assert [
        p.code for p in delivery_problems("KZ-MJ", 100, [6000], wire_sizes=[sealed], **LIMITS)
    ] == []
    files, wire = [6000, 2985], [sealed, 2985]  # 9,985 bytes of files, 10,001 on the wire
    assert delivery_problems("KZ-MJ", 1000, files, **LIMITS) == []
    assert [p.path for p in delivery_problems("KZ-MJ", 1000, files, wire_sizes=wire, **LIMITS)] == [
        "/Envelope/Header/Attachments"
    ]
