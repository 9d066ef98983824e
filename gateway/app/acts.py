"""Which administrative act each surface reaches, and through which function: the registry
docs/administration.md's table is generated from (:func:`acts_table`).

An act here is one use case of :mod:`gateway.app`; ``cli``, ``api`` and ``console`` name the
command, the local API's route and the console's form that call that function (None: the
surface does not offer the act, and ``only_here`` says why). ``tests/app/test_admin_acts.py``
holds this table to the code — each function exists, each command parses, each route and form is
served and asks for the act's role — and docs/administration.md to :func:`acts_table`;
``tests/app/test_admin_surfaces.py`` compares, act by act, what the three surfaces record.

Plain data (strings), so that the application layer names its adapters without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.exchange.service import ACCESS, Action

__all__ = ["ADMIN_ACTS", "AdminAct", "acts_table"]


@dataclass(frozen=True, slots=True)
class AdminAct:
    name: str
    """The act's name in tests/app/test_admin_surfaces.py (``hold-place``)."""
    function: str
    """The use case every surface calls (``gateway.app.admin.place_hold``)."""
    action: Action
    """The role check (:data:`gateway.exchange.service.ACCESS`)."""
    events: tuple[str, ...]
    """The audit events the act records (none: a read)."""
    cli: str | None
    """The command, without ``--config`` (``holds place``)."""
    api: str | None
    """The local API's route (``POST /api/v1/holds``)."""
    console: str | None
    """The console's route (``POST /admin/holds/place``)."""
    guard: str = ""
    """For a dangerous act: what stands in its way besides the role (CSRF on every console form,
    the audit event, a confirmation naming what it destroys or replaces)."""
    only_here: str = ""
    """Why a surface lacks the act (empty when all three have it)."""

    @property
    def surfaces(self) -> tuple[str, ...]:
        named = (("cli", self.cli), ("api", self.api), ("console", self.console))
        return tuple(surface for surface, route in named if route is not None)


ADMIN_ACTS: tuple[AdminAct, ...] = (
    AdminAct(
        "hold-place",
        "gateway.app.admin.place_hold",
        Action.MANAGE_HOLDS,
        ("hold.placed",),
        "holds place",
        "POST /api/v1/conversations/{conversation_id}/holds",
        "POST /admin/holds/place",
    ),
    AdminAct(
        "hold-release",
        "gateway.app.admin.release_holds",
        Action.MANAGE_HOLDS,
        ("hold.released",),
        "holds release",
        "POST /api/v1/conversations/{conversation_id}/holds/release",
        "POST /admin/holds/release",
        guard="dangerous: the conversation may then be purged; a reason (the order) is required",
    ),
    AdminAct(
        "hold-list",
        "gateway.app.admin.list_holds",
        Action.LIST_HOLDS,
        (),
        "holds list",
        "GET /api/v1/holds",
        "GET /admin/holds",
    ),
    AdminAct(
        "token-create",
        "gateway.app.admin.add_token",
        Action.MANAGE_TOKENS,
        ("token.created",),
        "tokens add",
        "POST /api/v1/tokens",
        "POST /admin/tokens",
    ),
    AdminAct(
        "token-revoke",
        "gateway.app.admin.revoke_token",
        Action.MANAGE_TOKENS,
        ("token.revoked",),
        "tokens revoke",
        "POST /api/v1/tokens/{token_id}/revoke",
        "POST /admin/tokens/{token_id}/revoke",
    ),
    AdminAct(
        "token-list",
        "gateway.app.admin.list_tokens",
        Action.MANAGE_TOKENS,
        (),
        "tokens list",
        "GET /api/v1/tokens",
        "GET /admin/acts",
    ),
    AdminAct(
        "user-add",
        "gateway.app.users.add_user",
        Action.MANAGE_USERS,
        ("user.added",),
        "users add",
        "POST /api/v1/users",
        "POST /admin/users",
    ),
    AdminAct(
        "user-disable",
        "gateway.app.users.disable_user",
        Action.MANAGE_USERS,
        ("user.disabled",),
        "users disable",
        "POST /api/v1/users/{username}/disable",
        "POST /admin/users/{username}/disable",
    ),
    AdminAct(
        "user-list",
        "gateway.app.users.list_users",
        Action.MANAGE_USERS,
        (),
        "users list",
        "GET /api/v1/users",
        "GET /admin/acts",
    ),
    AdminAct(
        "key-rotate",
        "gateway.app.keys.rotate",
        Action.MANAGE_KEYS,
        ("key.rotated",),
        "keys rotate",
        "POST /api/v1/keys/{role}/generations",
        "POST /admin/keys/rotate",
    ),
    AdminAct(
        "key-publish",
        "gateway.app.keys.publish",
        Action.MANAGE_KEYS,
        ("key.publication.exported",),
        "keys publish",
        "POST /api/v1/keys/publications",
        "POST /admin/keys/publish",
    ),
    AdminAct(
        "key-activate",
        "gateway.app.keys.activate",
        Action.MANAGE_KEYS,
        ("key.activated",),
        "keys activate",
        "POST /api/v1/keys/{role}/generations/{generation}/activate",
        "POST /admin/keys/activate",
        guard="refused unless the directory in force lists the certificate (`force` says why "
        "not, audited)",
    ),
    AdminAct(
        "key-revoke",
        "gateway.app.keys.revoke",
        Action.MANAGE_KEYS,
        ("key.revoked",),
        "keys revoke",
        "POST /api/v1/keys/{role}/generations/{generation}/revoke",
        "POST /admin/keys/revoke",
        guard="dangerous: remotely, `confirm` must name the generation (`seal.2`), else "
        "CONFIRMATION_MISMATCH; a routine reason is refused while documents it signed wait in "
        "the outbox",
    ),
    AdminAct(
        "key-import",
        "gateway.app.keys.import_certificate",
        Action.MANAGE_KEYS,
        ("key.certificate.imported",),
        "keys import",
        "POST /api/v1/keys/{role}/generations/{generation}/certificate",
        "POST /admin/keys/import",
        guard="only a certificate of that generation's key, naming this body, for the role, "
        "not expired (PEM or DER, at most 256 KiB)",
    ),
    AdminAct(
        "kek-rotate",
        "gateway.app.keys.rotate_kek_ring",
        Action.MANAGE_KEYS,
        ("kek.rotated",),
        "keys rotate kek",
        "POST /api/v1/kek/rotations",
        "POST /admin/kek/rotate",
        guard="dangerous: `confirm` must name the KEK in force (CONFIRMATION_MISMATCH)",
    ),
    AdminAct(
        "kek-rewrap",
        "gateway.app.keys.rewrap",
        Action.MANAGE_KEYS,
        ("kek.rewrap.finished",),
        "keys rewrap",
        "POST /api/v1/kek/rewraps",
        "POST /admin/kek/rewrap",
    ),
    AdminAct(
        "kek-destroy",
        "gateway.app.keys.destroy",
        Action.MANAGE_KEYS,
        ("kek.destroyed",),
        "keys destroy-kek",
        "POST /api/v1/kek/{kek_id}/destruction",
        "POST /admin/kek/destroy",
        guard="irreversible: backups under it and the read purposes it sealed become unreadable; "
        "never the KEK in force; remotely, `confirm` names the KEK and `acknowledge` echoes "
        "the warnings of what it still seals (`GET` the same path; the console's confirmation "
        "page), else CONFIRMATION_MISMATCH",
    ),
    AdminAct(
        "purge-run",
        "gateway.app.purge.run_purge_now",
        Action.RUN_PURGE,
        ("purge.started", "purge.finished"),
        "purge",
        "POST /api/v1/purge-runs",
        "POST /admin/purge-runs",
        guard="dangerous: destroys what the retention policies let go; held conversations stay",
    ),
    AdminAct(
        "directory-import",
        "gateway.app.directory.import_directory",
        Action.IMPORT_DIRECTORY,
        ("directory.imported",),
        "directory import",
        "POST /api/v1/directory",
        "POST /admin/directory/import",
        guard="only a version signed by the depositary and newer than the installed one",
    ),
    AdminAct(
        "audit-verify",
        "gateway.app.audit.verify",
        Action.READ_AUDIT,
        ("audit.verified",),
        "audit verify",
        "POST /api/v1/audit/verifications",
        "POST /admin/audit/verify",
    ),
    AdminAct(
        "audit-export",
        "gateway.app.audit.export_lines",
        Action.READ_AUDIT,
        ("audit.exported",),
        "audit export",
        "GET /api/v1/audit/export",
        "POST /admin/audit/export",
        guard="the read purposes are opened (`--purposes`) on the command line only",
    ),
    AdminAct(
        "audit-checkpoint",
        "gateway.app.audit.checkpoint",
        Action.READ_AUDIT,
        ("audit.checkpoint",),
        "audit checkpoint",
        "POST /api/v1/audit/checkpoints",
        "POST /admin/audit/checkpoint",
        guard="the line is kept off the node: the command appends it to a file (`--out`), the "
        "API answers it, the console hands it over as a file",
    ),
)
"""Every administrative act, in the order docs/administration.md lists them."""


def _cell(text: str | None) -> str:
    return f"`{text}`" if text else "—"


def acts_table() -> str:
    """docs/administration.md's table (Markdown), generated from :data:`ADMIN_ACTS`."""
    lines = [
        "| act | function (`gateway.app.`) | role | `gateway …` | local API | console "
        "| audit events | guard; missing surface |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for act in ADMIN_ACTS:
        role = " or ".join(f"`{r}`" for r in ACCESS[act.action].roles)
        events = ", ".join(f"`{e}`" for e in act.events) or "—"
        notes = "; ".join(n for n in (act.guard, act.only_here) if n) or "—"
        function = act.function.removeprefix("gateway.app.")
        lines.append(
            f"| {act.name} | `{function}` | {role} | {_cell(act.cli)} | {_cell(act.api)} "
            f"| {_cell(act.console)} | {events} | {notes} |"
        )
    return "\n".join(lines) + "\n"
