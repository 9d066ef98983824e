"""Issue #20 (the policy applied is not bound): the report named the policy file's path, not
its content, and a policy change between runs left no trace. Now the policy set's hash and
periods are in the signed report, each tombstone records the hash of the policy that expired
it, and a run whose policy set differs from the last run's first appends
``retention.policy_changed`` with old and new hashes. Both stores."""

from __future__ import annotations

import json

import sqlalchemy as sa

from gateway.app.purge import run_purge
from gateway.crypto.keys.kek import KekRing
from gateway.crypto.keys.keystore import SigningKey
from gateway.store import Store, audit
from gateway.store.tables import tombstones
from tests.app.purge.world import T0, add_conversation, after, one_policy, policies

NOW = after(T0, days=800)


def _changes(store: Store) -> list[dict[str, object]]:
    with store.read() as conn:
        return [dict(e.details) for e in audit.events(conn, kinds=["retention.policy_changed"])]


def test_policy_hash_in_report_and_tombstones_and_changes_audited(
    store: Store, ring: KekRing, seal: SigningKey
) -> None:
    first = one_policy("received", keep="1 year")
    second = one_policy("received", keep="2 years")
    with store.transaction() as conn:
        add_conversation(conn, ring, T0)
    report = json.loads(run_purge(store, first, NOW, seal=seal, actor="t").report)
    assert report["policy_set_sha256"] == first.sha256
    assert report["policies"] == {"p": "1 year after received"}
    with store.read() as conn:
        recorded = set(conn.execute(sa.select(tombstones.c.policy_sha256)).scalars())
    assert recorded == {first.policies[0].sha256}
    assert _changes(store) == [
        {"old_sha256": None, "new_sha256": first.sha256, "source": "test-policies.toml"}
    ]

    run_purge(store, first, after(NOW, days=1), seal=seal, actor="t")
    assert len(_changes(store)) == 1  # unchanged: nothing new

    report = json.loads(run_purge(store, second, after(NOW, days=2), seal=seal, actor="t").report)
    assert report["policies"] == {"p": "2 years after received"}
    assert first.sha256 != second.sha256
    assert _changes(store)[-1] == {
        "old_sha256": first.sha256,
        "new_sha256": second.sha256,
        "source": "test-policies.toml",
    }


def test_the_hash_follows_the_rule_not_the_layout() -> None:
    plain = one_policy("received")
    commented = policies(
        '# the national period\n\n[[policy]]\nname = "p"\n'
        'counts_from = "received"   # from receipt\nkeep = "1 year"\n'
    )
    assert plain.sha256 == commented.sha256
    assert plain.sha256 != one_policy("received", name="q").sha256
