"""The case system's ``attachments`` list: ids, or ids with what it says of each file."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.exchange.submission import ListedUpload, draft_of
from gateway.model.problems import DocumentRejected


def test_ids_and_described_uploads_read_alike() -> None:
    draft = draft_of(
        {
            "header": {},
            "attachments": [
                "a",
                {"id": "b", "title": "Перевод", "translation_of": "a.pdf"},
                {"id": "c", "register_extract": True, "title": ""},
            ],
        }
    )
    assert draft.attachments == (
        ListedUpload("a"),
        ListedUpload("b", "Перевод", "a.pdf"),
        ListedUpload("c", None, None, True),
    )
    assert draft.attachment_ids == ("a", "b", "c")


@pytest.mark.parametrize(
    ("listed", "said"),
    [
        ([{"title": "Акт"}], "item 1: id: a string"),
        (["a", {"id": "b", "size": 3}], "item 2: unknown fields size"),
        ([{"id": "a", "register_extract": "yes"}], "item 1: register_extract: a boolean"),
        ([{"id": "a", "title": 7}], "item 1: title: a string"),
        (["a", {"id": "a"}], "each upload once"),
        ([["a"]], "item 1: an id string or an object"),
        ("a", "a list of at most 50"),
    ],
)
def test_a_malformed_attachment_list_is_refused_by_item(listed: Any, said: str) -> None:
    with pytest.raises(DocumentRejected) as refused:
        draft_of({"header": {}, "body": {}, "attachments": listed})
    (problem,) = refused.value.problems
    assert problem.code == "JSON_SHAPE" and said in problem.message_en, problem.message_en
    assert "docs/attachments.md" in problem.remedy_ru


def test_the_headers_list_of_files_is_the_nodes_to_write() -> None:
    """A list typed by the case system would sign files that never travel."""
    listed = {"Attachment": [{"Name": "a.pdf", "MediaType": "application/pdf", "Size": 1}]}
    with pytest.raises(DocumentRejected) as refused:
        draft_of({"header": {"Attachments": listed}, "body": {}})
    (problem,) = refused.value.problems
    assert problem.code == "JSON_SHAPE" and "header.Attachments" in problem.message_en
