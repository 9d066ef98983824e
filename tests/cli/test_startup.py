"""``gateway --help`` stays cheap: building the parser loads no third-party package (each
command imports its stack when it runs). Timing is benchmarks/cli_startup.py's job; this test
checks the cause of slowness, which does not depend on how loaded the machine is."""

from __future__ import annotations

import json
import subprocess
import sys

from gateway.cli import keys, node, users

HEAVY = (
    "aiohttp",
    "alembic",
    "apscheduler",
    "asn1crypto",
    "cryptography",
    "fpdf",
    "jinja2",
    "lxml",
    "psycopg",
    "pyhanko",
    "signxml",
    "sqlalchemy",
    "xmlschema",
)
"""The stacks a command may need; none is needed to print the help."""


def test_help_loads_no_third_party_package() -> None:
    script = (
        "import json, sys\n"
        "from gateway.main import build_parser\n"
        "build_parser().format_help()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(done.stdout)
    heavy = sorted({m.split(".")[0] for m in loaded} & set(HEAVY))
    assert heavy == [], f"gateway --help imports {heavy}: move those imports into the handlers"
    assert "gateway.cli.keys_commands" not in loaded


def test_parser_choices_match_the_enums_they_stand_for() -> None:
    # The parser spells these out so that it need not import cryptography or the console.
    from gateway.crypto.algorithms import DEFAULT_KEY_SPEC, KeySpec
    from gateway.crypto.keys.generations import RevocationReason
    from gateway.crypto.keys.keystore import KeyRole
    from gateway.exchange.service import Role
    from gateway.web.console.labels import ROLE_LABELS

    assert tuple(r.value for r in KeyRole) == keys.KEY_ROLES
    assert tuple(s.value for s in KeySpec) == keys.KEY_SPECS
    assert DEFAULT_KEY_SPEC.value == keys.DEFAULT_KEY_SPEC
    assert tuple(r.value for r in RevocationReason) == keys.REVOCATION_REASONS
    assert {r.value: ROLE_LABELS[r] for r in Role} == users.USER_ROLES
    assert tuple(r.value for r in Role) == node.SERVICE_SCOPES
