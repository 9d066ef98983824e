"""Fixtures: a migrated store on SQLite and PostgreSQL (from tests/store) and a node
configuration pointing at it, so that ``gateway`` commands, the local API and the console's
sources all work on the same database."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import Store


@pytest.fixture
def node_toml(tmp_path: Path, store: Store) -> Path:
    path = tmp_path / "node.toml"
    url = store.engine.url.render_as_string(hide_password=False)
    path.write_text(
        f'[node]\nbody_id = "RU-FSSP"\ndata_dir = "{tmp_path}"\n\n[database]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path
