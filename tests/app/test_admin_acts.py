"""The registry of administrative acts (gateway.app.acts) against the code and the docs: each
act's function exists, its command parses, its route and form are served (the route asking for
the act's role), docs/administration.md holds the generated table, and every act the three
surfaces offer is compared in tests/app/test_admin_surfaces.py."""

from __future__ import annotations

import argparse
import importlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway.app.acts import ADMIN_ACTS, acts_table
from gateway.main import build_parser
from gateway.store.engine import Store
from gateway.web.console import StoreUserDirectory, make_console_app, store_audit
from gateway.web.local_api import ROUTES
from tests.app.test_admin_surfaces import CASES
from tests.doubles.local_service import LocalServiceDouble
from tests.web.console.conftest import (  # noqa: F401 - fixtures used by name
    CHEAP_HASHER,
    IDENTITY,
    _template_db,
    console_store,
    store_sources,
    store_url,
)

DOC = Path(__file__).parents[2] / "docs" / "administration.md"


def test_each_function_exists() -> None:
    for act in ADMIN_ACTS:
        module, _, name = act.function.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name)), act.name


def _reaches(parser: argparse.ArgumentParser, words: list[str]) -> bool:
    """Whether ``gateway WORDS…`` names a command (words past the last sub-command are its
    positional arguments: ``keys rotate kek``)."""
    for index, word in enumerate(words):
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers:
            return index > 0
        choices = subparsers[0].choices
        if word not in choices:
            return False
        parser = choices[word]
    return True


def test_each_command_parses() -> None:
    parser = build_parser()
    for act in ADMIN_ACTS:
        if act.cli is not None:
            assert _reaches(parser, act.cli.split()), act.cli


def test_each_api_route_is_served_with_the_acts_role() -> None:
    served = {(r.method, r.path): r.action for r in ROUTES}
    for act in ADMIN_ACTS:
        if act.api is not None:
            method, path = act.api.split()
            assert (method, path) in served, act.api
            assert served[method, path] is act.action, act.name


def test_each_console_form_is_served(console_store: Store, tmp_path: Path) -> None:  # noqa: F811
    config = tmp_path / "node.toml"
    config.write_text("", encoding="utf-8")
    app = make_console_app(
        LocalServiceDouble(datetime.now(UTC)),
        StoreUserDirectory(console_store),
        secure_cookies=False,
        audit=store_audit(console_store),
        identity=IDENTITY,
        password_hasher=CHEAP_HASHER,
        **store_sources(console_store, config),
    )
    served: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource: Any = route.resource
        if isinstance(resource, web.Resource):
            served.add((route.method, resource.canonical))
    for act in ADMIN_ACTS:
        if act.console is not None:
            method, path = act.console.split()
            assert (method, path) in served, act.console


def test_missing_surfaces_are_explained() -> None:
    for act in ADMIN_ACTS:
        assert (len(act.surfaces) == 3) == (not act.only_here), act.name


def test_every_act_of_three_surfaces_that_records_is_compared() -> None:
    for act in ADMIN_ACTS:
        if len(act.surfaces) == 3 and act.events:
            assert act.name in CASES, act.name
            assert CASES[act.name].kinds == act.events, act.name


def test_the_documented_table_is_the_registry() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert acts_table() in text, "regenerate: python -c 'from gateway.app.acts import acts_table…'"
