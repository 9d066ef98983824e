"""The administrator's acts in the console: legal holds (place, release), API tokens (add,
revoke), console users (add, disable), key generations (make, publish, activate, revoke), the
KEK ring (rotate, re-wrap), a new directory of bodies and a purge run now. One page,
``/admin/acts``, holds the forms and lists the tokens and users.

Each form calls the same function of :mod:`gateway.app` as ``gateway holds|tokens|users|keys|purge``
and the local API, as the signed-in user: the same role check, the same rows, the same audit
event (``tests/app/test_admin_surfaces.py``; :data:`gateway.app.acts.ADMIN_ACTS` lists them).
The session middleware has checked the form's CSRF token before a handler runs. Rotating the KEK
ring asks the administrator to type the id of the KEK in force (``confirm``). Destroying a retired
KEK goes through a page that shows what it still seals (``GET /admin/kek/destroy``): its form
carries the warnings' ``acknowledge`` value and asks for the KEK's id again. The demo CA's CRL
stays a command on the node's host (docs/administration.md).

    GET  /admin/acts
    POST /admin/holds/place              conversation_id, reason
    POST /admin/holds/release            conversation_id, reason
    POST /admin/tokens                   label, roles (several), expires_in_days (optional)
    POST /admin/tokens/{token_id}/revoke
    POST /admin/users                    username, password, roles (several)
    POST /admin/users/{username}/disable
    POST /admin/keys/activate            role, name, generation, at, force (optional)
    POST /admin/keys/revoke              role, name, generation, reason
    POST /admin/keys/rotate              role, name
    POST /admin/keys/publish
    POST /admin/keys/import              role, name, generation, certificate (PEM or DER file)
    POST /admin/kek/rotate               confirm, at
    POST /admin/kek/rewrap
    GET  /admin/kek/destroy              kek_id: the warnings, then the form
    POST /admin/kek/destroy              kek_id, confirm, acknowledge
    POST /admin/directory/import         directory (the signed XML file, multipart)
    POST /admin/purge-runs
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from gateway.app import admin, purge, users
from gateway.app import directory as app_directory
from gateway.app import keys as app_keys
from gateway.app.context import AppContext
from gateway.app.passwords import hash_password, password_problem
from gateway.crypto.keys.generations import PublishedCertificate, RevocationReason
from gateway.crypto.keys.kek import KEY_ID_PATTERN as KEK_ID_PATTERN
from gateway.crypto.keys.keystore import KeyRole, KeyStore
from gateway.exchange.service import Action, Role, may
from gateway.model.limits import MAX_DIRECTORY_BYTES
from gateway.model.numbers import whole_number
from gateway.model.problems import DocumentRejected
from gateway.web.case_acts import in_thread
from gateway.web.console.auth import error_page, see_other
from gateway.web.console.context import ACTOR, CONTEXT, SESSION, acting_user, require
from gateway.web.console.render import render
from gateway.web.console.streamed import read_small_form

T = TypeVar("T")

ROLE_CHOICES = tuple(str(role) for role in Role)
KEY_ROLES = tuple(str(r) for r in KeyRole if r is not KeyRole.KEK)
REVOCATION_REASONS = tuple(str(r) for r in RevocationReason)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _refused(request: web.Request, status: int, text: str) -> web.Response:
    return error_page(request, status, "Действие не выполнено", text)


def _done(request: web.Request, text: str) -> web.Response:
    request[SESSION].flash = text
    return see_other(request, "admin_acts")


async def acts_page(
    request: web.Request,
    issued: admin.IssuedToken | None = None,
    published: list[PublishedCertificate] | None = None,
) -> web.Response:
    actor = request[ACTOR]
    require(actor, Action.OPEN_ADMINISTRATION)
    ctx = acting_user(request)
    token_list = await in_thread(admin.list_tokens, ctx) if may(actor, Action.MANAGE_TOKENS) else []
    user_list = await in_thread(users.list_users, ctx) if may(actor, Action.MANAGE_USERS) else []
    return render(
        request,
        "admin_acts.html",
        {
            "tokens": token_list,
            "users": user_list,
            "roles": ROLE_CHOICES,
            "key_roles": KEY_ROLES,
            "reasons": REVOCATION_REASONS,
            "issued": issued,
            "published": published,
        },
    )


async def _hold_act(request: web.Request, act: Callable[[AppContext, str, str], T]) -> T:
    """``act(ctx, conversation_id, reason)`` with the form's values, as the signed-in user."""
    form = await request.post()
    conversation_id, reason = _field(form, "conversation_id"), _field(form, "reason")
    return await in_thread(act, acting_user(request), conversation_id, reason)


async def place_hold(request: web.Request) -> web.Response:
    try:
        hold_id = await _hold_act(request, admin.place_hold)
    except admin.HoldRefused as refused:
        return _refused(request, 422, f"Запрет не наложен: {refused}")
    return _done(request, f"Запрет № {hold_id} на уничтожение переписки наложен.")


async def release_holds(request: web.Request) -> web.Response:
    try:
        released = await _hold_act(request, admin.release_holds)
    except admin.NoActiveHold:
        return _refused(request, 409, "Действующих запретов на эту переписку нет.")
    except admin.HoldRefused as refused:
        return _refused(request, 422, f"Запрет не снят: {refused}")
    return _done(request, f"Сняты запреты: {', '.join(map(str, released))}.")


async def add_token(request: web.Request) -> web.Response:
    form = await request.post()
    roles = [r for r in form.getall("roles", []) if isinstance(r, str)]
    days_text = _field(form, "expires_in_days")
    days = whole_number(days_text, 5) if days_text else None
    if days_text and days is None:
        return _refused(request, 422, "Срок действия — целое число дней (или пусто: бессрочно).")
    try:
        issued = await in_thread(
            admin.add_token, acting_user(request), _field(form, "label"), roles, days
        )
    except admin.TokenRefused as refused:
        return _refused(request, 422, f"Токен не создан: {refused}")
    # Shown once, on this page only: never put in a redirect, the session or the log.
    return await acts_page(request, issued)


async def revoke_token(request: web.Request) -> web.Response:
    token_id = whole_number(request.match_info["token_id"], 18)
    if token_id is None:
        return _refused(request, 404, "Такого токена нет.")
    try:
        await in_thread(admin.revoke_token, acting_user(request), token_id)
    except admin.TokenRefused as refused:
        return _refused(request, 422, f"Токен не отозван: {refused}")
    return _done(request, f"Токен № {token_id} отозван.")


async def add_user(request: web.Request) -> web.Response:
    form = await request.post()
    username, password = _field(form, "username"), form.get("password")
    roles = [r for r in form.getall("roles", []) if isinstance(r, str)]
    if not isinstance(password, str):
        return _refused(request, 422, "Укажите пароль.")
    problem = password_problem(password)
    if problem is not None:
        return _refused(request, 422, f"Пароль не подходит: {problem}")
    ctx = acting_user(request)
    try:
        users.new_user_roles(username, roles)  # a bad name or role is said before hashing
        hasher = request.app[CONTEXT].passwords.hasher  # the console's own (tests: a cheap one)

        def add() -> users.User:  # hashing costs tens of milliseconds: off the event loop
            return users.add_user(ctx, username, hash_password(password, hasher), roles)

        user = await in_thread(add)
    except users.UserRefused as refused:
        return _refused(request, 409 if refused.code == "USERNAME_TAKEN" else 422, str(refused))
    return _done(request, f"Пользователь {user.username} добавлен.")


async def disable_user(request: web.Request) -> web.Response:
    username = request.match_info["username"]
    try:
        await in_thread(users.disable_user, acting_user(request), username)
    except users.UserRefused:
        return _refused(request, 404, f"Пользователя {username} нет.")
    return _done(request, f"Пользователь {username} отключён.")


def _key_form(form: Any) -> tuple[KeyRole, str, int] | None:
    role, generation = _field(form, "role"), whole_number(_field(form, "generation"), 6)
    if role not in KEY_ROLES or generation is None:
        return None
    return KeyRole(role), _field(form, "name"), generation


NO_KEYS = "Консоль запущена без ключей узла."


async def _with_keys(
    request: web.Request, failed: str, fn: Callable[..., T], *args: Any
) -> T | web.Response:
    """``fn(ctx, keys, *args)`` off the event loop as the signed-in user; a refusal page
    (beginning with ``failed``) when the console has no keys or the act is refused."""
    ctx = acting_user(request)
    if ctx.keys is None:
        return _refused(request, 503, NO_KEYS)
    try:
        return await in_thread(fn, ctx, ctx.keys, *args)
    except (*app_keys.REFUSALS, ValueError) as refused:
        return _refused(request, 422, f"{failed}: {refused}")


async def _key_act(
    request: web.Request, failed: str, said: Callable[[T], str], fn: Callable[..., T], *args: Any
) -> web.Response:
    """:func:`_with_keys`, then back to the acts page saying ``said(result)``."""
    done = await _with_keys(request, failed, fn, *args)
    return done if isinstance(done, web.Response) else _done(request, said(done))


async def activate_key(request: web.Request) -> web.Response:
    form = await request.post()
    target = _key_form(form)
    if target is None:
        return _refused(request, 422, "Укажите вид ключа и номер поколения.")
    at, force = _field(form, "at") or "now", _field(form, "force") or None

    def act(ctx: AppContext, keys: KeyStore) -> app_keys.Activated:
        when = app_keys.parse_time(at, ctx.clock())
        return app_keys.activate(ctx, keys, *target, when, force=force)

    return await _key_act(
        request,
        "Поколение ключа не введено",
        lambda done: f"{done.stem} вводится в действие {done.at.isoformat()}.",
        act,
    )


async def revoke_key(request: web.Request) -> web.Response:
    form = await request.post()
    target, reason = _key_form(form), _field(form, "reason")
    confirm = _field(form, "confirm")
    if target is None or reason not in REVOCATION_REASONS:
        return _refused(request, 422, "Укажите вид ключа, номер поколения и причину отзыва.")

    def act(ctx: AppContext, keys: KeyStore) -> app_keys.Revoked:
        return app_keys.revoke(
            ctx, keys, *target, RevocationReason(reason), ctx.clock(), confirm=confirm
        )

    return await _key_act(
        request,
        "Поколение ключа не отозвано",
        lambda done: f"{done.stem} отозван ({done.reason.value}).",
        act,
    )


async def rotate_key(request: web.Request) -> web.Response:
    form = await request.post()
    role, name = _field(form, "role"), _field(form, "name")
    if role not in KEY_ROLES:
        return _refused(request, 422, "Укажите вид ключа.")

    def said(done: app_keys.Rotated) -> str:
        how = "сертификат выдан демо-УЦ" if done.demo_ca else "запрос сертификата записан на узле"
        return f"{done.stem}: новое поколение {done.generation} ожидает ({how})."

    return await _key_act(
        request, "Новое поколение не создано", said, app_keys.rotate, KeyRole(role), name
    )


async def publish_keys(request: web.Request) -> web.Response:
    published = await _with_keys(request, "Сертификаты не выгружены", app_keys.publish)
    if isinstance(published, web.Response):
        return published
    return await acts_page(request, published=published)


async def rotate_kek(request: web.Request) -> web.Response:
    form = await request.post()
    confirm, at = _field(form, "confirm"), _field(form, "at") or "now"

    def act(ctx: AppContext, keys: KeyStore) -> app_keys.RotatedKek:
        when = app_keys.parse_time(at, ctx.clock())
        return app_keys.rotate_kek_ring(ctx, keys, at=when, confirm=confirm)

    def said(done: app_keys.RotatedKek) -> str:
        return (
            f"KEK {done.key_id} действует с {done.active_from.isoformat()} (прежний: "
            f"{done.previous}); перешифруйте ключи данных."
        )

    return await _key_act(request, "KEK не заменён", said, act)


def _rewrapped(done: app_keys.Rewrapped) -> str:
    result = done.result
    state = "все" if result.complete else "не все — повторите"
    return f"Перешифровано ключей данных: {result.rewrapped} под {result.active} ({state})."


async def rewrap(request: web.Request) -> web.Response:
    return await _key_act(request, "Ключи данных не перешифрованы", _rewrapped, app_keys.rewrap)


async def import_certificate(request: web.Request) -> web.Response:
    # More than the limit is refused, naming it, by the app.
    form, files = await read_small_form(request, {"certificate": app_keys.MAX_CERTIFICATE_BYTES})
    target, data = _key_form(form), files.get("certificate")
    if target is None:
        return _refused(request, 422, "Укажите вид ключа и номер поколения.")
    if data is None:
        return _refused(request, 422, "Выберите файл сертификата, выданного УЦ (PEM или DER).")
    done = await _with_keys(
        request,
        "Сертификат не установлен",
        app_keys.import_certificate,
        *target,
        data,
    )
    if isinstance(done, web.Response):
        return done
    return _done(
        request,
        f"Сертификат для {done.stem} установлен (действует до "
        f"{done.certificate.not_valid_after_utc:%Y-%m-%d}).",
    )


def _destruction_page(
    request: web.Request, notice: app_keys.DestructionNotice, refusal: str = ""
) -> web.Response:
    return render(
        request,
        "admin_kek_destroy.html",
        {"notice": notice, "refusal": refusal},
        status=422 if refusal else 200,
    )


NO_KEK_ID = "Укажите идентификатор выведенного KEK (kek-…), как на странице «Ключи»."


async def kek_destruction(request: web.Request) -> web.Response:
    """The warnings of what destroying the KEK ends, then the form that destroys it."""
    kek_id = request.query.get("kek_id", "").strip()
    if not KEK_ID_PATTERN.fullmatch(kek_id):
        return _refused(request, 422, NO_KEK_ID)
    notice = await _with_keys(request, "KEK не уничтожен", app_keys.destruction_notice, kek_id)
    if isinstance(notice, web.Response):
        return notice
    return _destruction_page(request, notice)


async def destroy_kek(request: web.Request) -> web.Response:
    form = await request.post()
    kek_id, confirm = _field(form, "kek_id"), _field(form, "confirm")
    acknowledge = _field(form, "acknowledge")
    if not KEK_ID_PATTERN.fullmatch(kek_id):
        return _refused(request, 422, NO_KEK_ID)

    def act(ctx: AppContext, keys: KeyStore) -> str | app_keys.DestructionUnconfirmed:
        try:
            return app_keys.destroy(ctx, keys, kek_id, confirm=confirm, acknowledge=acknowledge)
        except app_keys.DestructionUnconfirmed as refused:
            return refused  # the page again, with the warnings as they are now

    done = await _with_keys(request, "KEK не уничтожен", act)
    if isinstance(done, app_keys.DestructionUnconfirmed):
        return _destruction_page(request, done.notice, str(done))
    if isinstance(done, web.Response):
        return done
    return _done(
        request,
        f"KEK {done} уничтожен: резервные копии под ним больше не читаются, как и ключи "
        "периодов хранения в них.",
    )


async def import_directory(request: web.Request) -> web.Response:
    _, files = await read_small_form(request, {"directory": MAX_DIRECTORY_BYTES})
    data = files.get("directory")
    if data is None:
        return _refused(request, 422, "Выберите файл справочника (подписанный XML депозитария).")
    if len(data) > MAX_DIRECTORY_BYTES:
        return _refused(request, 413, f"Файл справочника больше {MAX_DIRECTORY_BYTES} байт.")
    try:
        done = await in_thread(app_directory.import_directory, acting_user(request), data)
    except DocumentRejected as rejected:
        reasons = "; ".join(p.message_ru for p in rejected.problems)
        return _refused(request, 422, f"Справочник не установлен: {reasons}")
    if done.already:
        return _done(request, f"Справочник версии {done.version} уже установлен.")
    return _done(request, f"Справочник версии {done.version} установлен; узел перешёл на него.")


async def run_purge(request: web.Request) -> web.Response:
    ctx = acting_user(request)
    try:
        report = await in_thread(purge.run_purge_now, ctx, None, ctx.clock())
    except purge.PurgeLocked:
        return _refused(request, 409, "Уничтожение уже выполняется; этот запуск не начат.")
    except purge.PurgeRefused as refused:
        return _refused(request, 503, f"Уничтожение не запущено: {refused}")
    return _done(request, f"Запуск {report.run_id}: {report.state}, уничтожено {report.purged}.")


MAX_RUN_ID = 64
"""Longer than any run id (a UUID): anything longer names no run."""


async def verify_purge_report(request: web.Request) -> web.Response:
    """The run's signed report checked as ``gateway purge verify-report`` does; the verdict is
    shown above the list of runs."""
    run_id = request.match_info["run_id"]
    missing = f"Подписанного отчёта запуска {run_id[:MAX_RUN_ID]} нет."
    if len(run_id) > MAX_RUN_ID:
        return _refused(request, 404, missing)
    check = await in_thread(purge.check_report, acting_user(request), run_id)
    if not check.stored:
        return _refused(request, 404, missing)
    request[SESSION].flash = (
        f"Отчёт запуска {run_id}: подпись печатью верна, удалено {check.report.get('purged')}."
        if check.ok
        else f"Отчёт запуска {run_id} НЕ ПОДТВЕРЖДЁН: {check.reason}"
    )
    return see_other(request, "admin_holds")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/admin/acts", acts_page, name="admin_acts", allow_head=False)
    router.add_post("/admin/holds/place", place_hold, name="admin_hold_place")
    router.add_post("/admin/holds/release", release_holds, name="admin_hold_release")
    router.add_post("/admin/tokens", add_token, name="admin_token_add")
    router.add_post("/admin/tokens/{token_id}/revoke", revoke_token, name="admin_token_revoke")
    router.add_post("/admin/users", add_user, name="admin_user_add")
    router.add_post("/admin/users/{username}/disable", disable_user, name="admin_user_disable")
    router.add_post("/admin/keys/activate", activate_key, name="admin_key_activate")
    router.add_post("/admin/keys/revoke", revoke_key, name="admin_key_revoke")
    router.add_post("/admin/keys/rotate", rotate_key, name="admin_key_rotate")
    router.add_post("/admin/keys/publish", publish_keys, name="admin_key_publish")
    router.add_post("/admin/kek/rotate", rotate_kek, name="admin_kek_rotate")
    router.add_post("/admin/kek/rewrap", rewrap, name="admin_kek_rewrap")
    router.add_post("/admin/keys/import", import_certificate, name="admin_key_import")
    router.add_get(
        "/admin/kek/destroy", kek_destruction, name="admin_kek_destroy", allow_head=False
    )
    router.add_post("/admin/kek/destroy", destroy_kek, name="admin_kek_destroy")
    router.add_post("/admin/directory/import", import_directory, name="admin_directory_import")
    router.add_post("/admin/purge-runs", run_purge, name="admin_purge_run")
    router.add_post(
        "/admin/purge-runs/{run_id}/verification",
        verify_purge_report,
        name="admin_purge_report_verify",
    )
