"""A case system that lost the answer to a submission sends the same document again.

With its own MessageId, the repeat is refused as a duplicate (409 PROTOCOL_DUPLICATE_MESSAGE at the
local API), whether or not it named its ConversationId, and nothing new is stored or queued.
Before, a repeated Request without a ConversationId opened a second conversation, failed on the
stored message id with a ValueError and answered 500.
"""

from __future__ import annotations

import copy
import uuid

import pytest

from gateway.config import NodeConfig
from gateway.exchange.conversation import DuplicateMessage
from gateway.exchange.node import Node
from tests.integration.exchange_world import node_config, padded_request, row_counts


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
@pytest.mark.parametrize("names_conversation", [False, True])
def test_a_resubmitted_document_is_a_duplicate_and_stores_nothing(
    world, pg_schema, store: str, names_conversation: bool
) -> None:
    url = pg_schema("resubmit") if store == "postgresql" else ""
    tag = f"resubmit-{store}-{int(names_conversation)}"
    node = Node.from_config(
        NodeConfig.from_toml(node_config(world, "RU-FSSP", tag, database_url=url))
    )
    try:
        document = padded_request()
        document["header"]["MessageId"] = str(uuid.uuid4())
        if names_conversation:
            document["header"]["ConversationId"] = str(uuid.uuid4())
        first, _ = node.submit(copy.deepcopy(document), actor="case-system")
        before = row_counts(node.store)

        with pytest.raises(DuplicateMessage) as repeated:
            node.submit(copy.deepcopy(document), actor="case-system")

        assert repeated.value.code == "PROTOCOL_DUPLICATE_MESSAGE"
        assert first.message_id in str(repeated.value)
        assert row_counts(node.store) == before
    finally:
        node.close()
