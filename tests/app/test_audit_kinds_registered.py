"""Every kind the code appends is registered (gateway.store.audit_events), read from the code
itself — also on paths no other test takes: the kinds named by constants, and every literal
kind handed to ``audit.append``, ``AppContext.audit``, the console's audit callback, the key
use cases' ``_record``, the node's reads, or recording a conversation's effects. ``append``
refuses the others at run time; this finds them before."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from gateway.app import acts, audit_checkpoints, directory, tombstone_check
from gateway.app import audit as app_audit
from gateway.exchange import existence, recording, refusals
from gateway.exchange.local_service import ATTACHMENT_VERIFIED
from gateway.store import conversations, originals, period_keys, purge
from gateway.store.audit_events import AUDIT_EVENTS, RETIRED_EVENTS, WRITTEN_EVENTS

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"


def test_the_kinds_named_by_constants_are_registered() -> None:
    written = {
        ATTACHMENT_VERIFIED,
        app_audit.VERIFIED,
        app_audit.EXPORTED,
        audit_checkpoints.CHECKPOINT_KIND,
        conversations.PROCEEDING_CLOSED_EVENT,
        directory.IMPORTED,
        originals.SENT_EVENT,
        originals.RECEIVED_EVENT,
        period_keys.DESTROYED_EVENT,
        purge.BATCH_EVENT,
        purge.POLICY_CHANGED_EVENT,
        recording.ANSWER_LATE_EVENT,
        refusals.SUMMARY_KIND,
        refusals.RECEIVED,
        refusals.AT_ENDPOINT,
        *existence.STORING_EVENTS,
        *(f"purge.{state}" for state in ("finished", "failed")),  # purge.finish_run
        *(event for act in acts.ADMIN_ACTS for event in act.events),
    }
    assert written - WRITTEN_EVENTS == set()
    assert {purge.CHUNK_EVENT, tombstone_check.LEGACY_EVENT} <= RETIRED_EVENTS  # verified only


def _literal_kinds(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _literal_kinds(node.body)
        yield from _literal_kinds(node.orelse)


def _kinds_appended(tree: ast.AST) -> Iterator[str]:
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = (
            func.value.id
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            else ""
        )
        if name == "append" and owner in {"audit", "audit_store"}:
            for keyword in call.keywords:
                if keyword.arg == "kind":
                    yield from _literal_kinds(keyword.value)
        elif name in {"audit", "_record", "record", "record_event"} and len(call.args) > 1:
            yield from _literal_kinds(call.args[1])
        elif name == "_append_read" and len(call.args) > 2:  # the node's reads with a purpose
            yield from _literal_kinds(call.args[2])
    for function in ast.walk(tree):
        # gateway.exchange.recording.effect_events: (kind, details) of each effect
        if isinstance(function, ast.FunctionDef) and function.name == "effect_events":
            for pair in ast.walk(function):
                if isinstance(pair, ast.Tuple) and pair.elts:
                    yield from _literal_kinds(pair.elts[0])


def test_every_literal_kind_appended_is_registered() -> None:
    found: dict[str, str] = {}
    for path in sorted(GATEWAY.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for kind in _kinds_appended(tree):
            found.setdefault(kind, str(path.relative_to(GATEWAY.parent)))
    assert len(found) > 40, "the scan no longer finds the appends"
    unregistered = {kind: where for kind, where in found.items() if kind not in WRITTEN_EVENTS}
    assert unregistered == {}
    assert set(found) <= set(AUDIT_EVENTS)
