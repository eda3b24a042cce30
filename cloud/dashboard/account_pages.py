"""The pages of accounts people run themselves: sign-up, forgotten password, invitation,
e-mail confirmation, and the signed-in user's profile and password.

Plain HTML forms, usable without scripts. The forms of a visitor without a session carry their
own token (a field matching a SameSite=Strict cookie, and the Origin checked), as the login form
does; a signed-in user's forms carry the session's CSRF token. Each page asks the same service
the API route does.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import time
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ..access import Principal
from ..api.account import Preferences, ProfileUpdate, account_context
from ..api.deps import client_address, jwt_secret
from ..errors import CloudError
from ..services import accounts, auth, preferences
from .i18n import languages, pick_language, translator
from .session_pages import set_session
from .web import csrf_ok, render, viewer

router = APIRouter(prefix="/dashboard", include_in_schema=False)
FORM_COOKIE = "gg_form"
# each language's own name, for the languages the app has a catalog of (`locales/`)
LANGUAGE_NAMES = {"en": "English", "hi": "हिन्दी", "ta": "தமிழ்", "bn": "বাংলা", "ml": "മലയാളം"}


def _t(request: Request):
    return translator(pick_language(request.headers.get("accept-language")))


def _page(  # a form shown again with its error answers 200, as the login form does
    request: Request,
    template: str,
    title_key: str,
    *,
    principal: Principal | None = None,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page whose forms carry a fresh form token (also set as a cookie)."""
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        template,
        principal,
        status=status,
        title=_t(request)(title_key),
        form_token=token,
        **context,
    )
    response.set_cookie(
        FORM_COOKIE,
        token,
        max_age=3600,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _form_ok(request: Request, form_token: str) -> bool:
    """The form came from a page of ours: the Origin (when named) is this site and the token
    field matches the cookie another site cannot read or set."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return False
    expected = request.cookies.get(FORM_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), form_token.encode())


def _session_form_ok(request: Request, csrf: str) -> bool:
    return csrf_ok(request, csrf)


async def _boards(request: Request) -> list[dict[str, Any]]:
    """The boards a consumer may belong to (public names), for the sign-up form."""
    async with request.app.state.pool.connection() as conn:
        cursor = await conn.execute("SELECT code, name FROM boards ORDER BY name")
        return await cursor.fetchall()


async def _sign_in(request: Request, email: str, password: str, target: str) -> Response:
    pair = await auth.login(
        request.app.state.pool,
        email=email,
        password=password,
        client_ip=client_address(request),
        settings=request.app.state.settings,
        secret=jwt_secret(request),
    )
    response = RedirectResponse(target, status_code=303)
    set_session(response, pair, request.url.scheme == "https")
    response.delete_cookie(FORM_COOKIE, path="/dashboard")
    return response


# --- sign-up ------------------------------------------------------------------------------


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request) -> Response:
    return _page(request, "signup.html", "signup.title", step="ask", boards=await _boards(request))


@router.post("/signup", response_class=HTMLResponse)
async def signup(
    request: Request,
    account_no: str = Form(..., max_length=64),
    email: str = Form(..., max_length=254),
    board_code: str = Form("", max_length=64),
    form_token: str = Form("", max_length=100),
) -> Response:
    t = _t(request)
    boards = await _boards(request)
    fields = {"account_no": account_no.strip(), "email": email.strip(), "board_code": board_code}
    if not _form_ok(request, form_token):
        return _page(
            request,
            "signup.html",
            "signup.title",
            step="ask",
            boards=boards,
            error=t("form.expired"),
            status=403,
            **fields,
        )
    try:
        await accounts.request_signup(
            request.app.state.pool,
            account_context(request),
            account_no=fields["account_no"],
            email=fields["email"],
            board_code=board_code or None,
            client_ip=client_address(request),
        )
    except CloudError as exc:
        return _page(
            request,
            "signup.html",
            "signup.title",
            step="ask",
            boards=boards,
            error=str(exc),
            status=200,
            **fields,
        )
    return _page(request, "signup.html", "signup.title", step="code", boards=boards, **fields)


@router.post("/signup/complete", response_class=HTMLResponse)
async def signup_complete(
    request: Request,
    account_no: str = Form(..., max_length=64),
    email: str = Form(..., max_length=254),
    board_code: str = Form("", max_length=64),
    code: str = Form(..., max_length=20),
    password: str = Form(..., max_length=256),
    form_token: str = Form("", max_length=100),
) -> Response:
    t = _t(request)
    fields = {"account_no": account_no, "email": email, "board_code": board_code, "code": code}
    boards = await _boards(request)

    def again(error: str, status: int) -> Response:
        return _page(
            request,
            "signup.html",
            "signup.title",
            step="code",
            boards=boards,
            error=error,
            status=status,
            **fields,
        )

    if not _form_ok(request, form_token):
        return again(t("form.expired"), 403)
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return again(t("signup.code_format"), 200)
    try:
        user = await accounts.complete_signup(
            request.app.state.pool,
            account_context(request),
            account_no=account_no,
            email=email,
            board_code=board_code or None,
            code=code,
            password=password,
            client_ip=client_address(request),
        )
        return await _sign_in(request, user["email"], password, "/dashboard")
    except CloudError as exc:
        return again(str(exc), 200)


# --- forgotten password and reset ---------------------------------------------------------


@router.get("/password/forgot", response_class=HTMLResponse)
async def forgot_page(request: Request) -> Response:
    return _page(request, "forgot.html", "forgot.title")


@router.post("/password/forgot", response_class=HTMLResponse)
async def forgot(
    request: Request,
    email: str = Form(..., max_length=254),
    form_token: str = Form("", max_length=100),
) -> Response:
    if not _form_ok(request, form_token):
        return _page(request, "forgot.html", "forgot.title", error=_t(request)("form.expired"))
    try:
        await accounts.request_password_reset(
            request.app.state.pool,
            account_context(request),
            email=email.strip(),
            client_ip=client_address(request),
        )
    except CloudError as exc:
        return _page(request, "forgot.html", "forgot.title", error=str(exc))
    return _page(request, "forgot.html", "forgot.title", sent_to=email.strip())


@router.get("/password/reset", response_class=HTMLResponse)
async def reset_page(request: Request, token: str = "") -> Response:
    return _page(request, "choose_password.html", "reset.title", token=token[:100], mode="reset")


@router.post("/password/reset", response_class=HTMLResponse)
async def reset(
    request: Request,
    token: str = Form(..., max_length=100),
    password: str = Form(..., max_length=256),
    form_token: str = Form("", max_length=100),
) -> Response:
    t = _t(request)

    def again(error: str, status: int) -> Response:
        return _page(
            request,
            "choose_password.html",
            "reset.title",
            token=token,
            mode="reset",
            error=error,
            status=status,
        )

    if not _form_ok(request, form_token):
        return again(t("form.expired"), 403)
    try:
        await accounts.reset_password(
            request.app.state.pool, account_context(request), token=token, password=password
        )
    except CloudError as exc:
        return again(str(exc), 200)
    return render(
        request,
        "message.html",
        None,
        title=t("reset.done_title"),
        message=t("reset.done"),
        link=("/dashboard/login", t("login.submit")),
    )


# --- invitation ---------------------------------------------------------------------------


@router.get("/invitation", response_class=HTMLResponse)
async def invitation_page(request: Request, token: str = "") -> Response:
    try:
        invited = await accounts.invitation_for(
            request.app.state.pool, account_context(request), token[:100]
        )
    except CloudError as exc:
        return render(
            request,
            "message.html",
            None,
            status=200,
            title=_t(request)("invitation.title"),
            message=str(exc),
        )
    return _page(
        request,
        "choose_password.html",
        "invitation.title",
        token=token,
        mode="invitation",
        invited=invited,
    )


@router.post("/invitation", response_class=HTMLResponse)
async def accept_invitation(
    request: Request,
    token: str = Form(..., max_length=100),
    password: str = Form(..., max_length=256),
    name: str = Form("", max_length=200),
    form_token: str = Form("", max_length=100),
) -> Response:
    t = _t(request)
    ctx = account_context(request)
    try:
        invited = await accounts.invitation_for(request.app.state.pool, ctx, token)
    except CloudError as exc:
        return render(
            request,
            "message.html",
            None,
            status=200,
            title=t("invitation.title"),
            message=str(exc),
        )

    def again(error: str, status: int) -> Response:
        return _page(
            request,
            "choose_password.html",
            "invitation.title",
            token=token,
            mode="invitation",
            invited={**invited, "name": name or invited["name"]},
            error=error,
            status=status,
        )

    if not _form_ok(request, form_token):
        return again(t("form.expired"), 403)
    try:
        user = await accounts.accept_invitation(
            request.app.state.pool, ctx, token=token, password=password, name=name.strip() or None
        )
        return await _sign_in(request, user["email"], password, "/dashboard")
    except CloudError as exc:
        return again(str(exc), 200)


# --- e-mail confirmation ------------------------------------------------------------------


@router.get("/email/confirm", response_class=HTMLResponse)
async def confirm_email_page(request: Request, token: str = "") -> Response:
    # a button, not the link itself: mail scanners open links, and must not confirm by it
    return _page(request, "confirm_email.html", "email.confirm_title", token=token[:100])


@router.post("/email/confirm", response_class=HTMLResponse)
async def confirm_email(
    request: Request,
    token: str = Form(..., max_length=100),
    form_token: str = Form("", max_length=100),
) -> Response:
    t = _t(request)
    if not _form_ok(request, form_token):
        return _page(
            request,
            "confirm_email.html",
            "email.confirm_title",
            token=token,
            error=t("form.expired"),
            status=403,
        )
    try:
        user = await accounts.confirm_email(
            request.app.state.pool, account_context(request), token=token
        )
    except CloudError as exc:
        return _page(
            request,
            "confirm_email.html",
            "email.confirm_title",
            token=token,
            error=str(exc),
            status=200,
        )
    return render(
        request,
        "message.html",
        None,
        title=t("email.confirmed_title"),
        message=t("email.confirmed", email=user["email"]),
        link=("/dashboard/profile", t("profile.title")),
    )


# --- profile ------------------------------------------------------------------------------


async def _profile_page(
    request: Request,
    principal: Principal,
    *,
    status: int = 200,
    typed_me: dict[str, Any] | None = None,
    typed_chosen: dict[str, Any] | None = None,
    **context: Any,
) -> Response:
    """The profile page; `typed_*`: what a refused form held, shown again instead of what is
    stored, so nothing typed is lost."""
    async with request.app.state.pool.connection() as conn:
        me = await accounts.profile(conn, principal) | (typed_me or {})
        consents = await preferences.consents(conn, principal)
        chosen = await preferences.preferences(conn, principal) | (typed_chosen or {})
    return render(
        request,
        "profile.html",
        principal,
        status=status,
        title=_t(request)("profile.title"),
        me=me,
        consents=consents["current"],
        chosen=chosen,
        consent_kinds=preferences.CONSENT_KINDS,
        channels=preferences.CHANNELS,
        opt_outs=preferences.OPT_OUTS,
        severities=preferences.SEVERITIES,
        languages={code: LANGUAGE_NAMES.get(code, code) for code in languages()},
        **context,
    )


@router.get("/profile", response_class=HTMLResponse)
async def profile_page(
    request: Request,
    principal: Principal = Depends(viewer),
    changed: bool = False,
    saved: bool = False,
    preferences_saved: bool = False,
    no_phone: bool = False,
) -> Response:
    t = _t(request)
    notice = t("profile.password_changed") if changed else (t("profile.saved") if saved else None)
    # said in the preferences' box, where the page opens after their Save
    preferences_notice = None
    if preferences_saved:
        preferences_notice = t("preferences.no_phone") if no_phone else t("profile.saved")
    return await _profile_page(
        request, principal, notice=notice, preferences_notice=preferences_notice
    )


@router.post("/profile", response_class=HTMLResponse)
async def update_profile(
    request: Request,
    principal: Principal = Depends(viewer),
    name: str = Form("", max_length=200),
    email: str = Form("", max_length=254),
    phone: str = Form("", max_length=25),
    language: str = Form("en", max_length=2),
    csrf: str = Form("", max_length=100),
) -> Response:
    t = _t(request)
    if not _session_form_ok(request, csrf):
        return await _profile_page(request, principal, status=403, error=t("form.expired"))
    raw: dict[str, Any] = {"name": name.strip() or None, "phone": phone.strip() or None}
    if language in languages():
        raw["language"] = language
    if email.strip():
        raw["email"] = email.strip()
    try:
        changes = ProfileUpdate.model_validate(
            {k: v for k, v in raw.items() if v is not None or k == "phone"}
        )
        updated = await accounts.update_profile(
            request.app.state.pool,
            account_context(request),
            principal,
            changes.model_dump(exclude_unset=True),
        )
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(p) for p in problem["loc"])
        return await _profile_page(
            request, principal, error=t(f"hint.{field}"), typed_me=_typed_me(raw, email)
        )
    except CloudError as exc:
        return await _profile_page(
            request, principal, error=str(exc), typed_me=_typed_me(raw, email)
        )
    notice = t("profile.saved")
    if updated["pending_email"]:
        notice = t("profile.email_pending", email=updated["pending_email"])
    return await _profile_page(request, principal, notice=notice)


def _typed_me(raw: dict[str, Any], email: str) -> dict[str, Any]:
    typed = {"name": raw.get("name"), "phone": raw.get("phone")}
    if email.strip():
        typed["email"] = email.strip()
    return typed


def _typed_chosen(raw: dict[str, Any]) -> dict[str, Any]:
    """The preferences form as typed, in the shapes the page shows."""
    typed = dict(raw)
    for key in ("quiet_from", "quiet_until"):
        try:
            typed[key] = time.fromisoformat(raw[key]) if raw[key] else None
        except ValueError:
            typed[key] = None
    return typed


@router.post("/profile/password", response_class=HTMLResponse)
async def change_password(
    request: Request,
    principal: Principal = Depends(viewer),
    current_password: str = Form(..., max_length=256),
    new_password: str = Form(..., max_length=256),
    csrf: str = Form("", max_length=100),
) -> Response:
    t = _t(request)
    if not _session_form_ok(request, csrf):
        return await _profile_page(request, principal, status=403, error=t("form.expired"))
    try:
        await accounts.change_password(
            request.app.state.pool,
            account_context(request),
            principal,
            current=current_password,
            new=new_password,
            client_ip=client_address(request),
        )
        async with request.app.state.pool.connection() as conn:
            me = await accounts.profile(conn, principal)
        # every session ended, this one too: sign in again with the new password
        return await _sign_in(request, me["email"], new_password, "/dashboard/profile?changed=1")
    except CloudError as exc:
        return await _profile_page(request, principal, password_error=str(exc))


@router.post("/profile/consents", response_class=HTMLResponse)
async def change_consents(request: Request, principal: Principal = Depends(viewer)) -> Response:
    """The consent checkboxes: each kind ticked is granted, each left empty revoked."""
    form = await request.form()
    t = _t(request)
    if not _session_form_ok(request, str(form.get("csrf", ""))[:100]):
        return await _profile_page(request, principal, status=403, error=t("form.expired"))
    async with request.app.state.pool.connection() as conn:
        for kind in preferences.CONSENT_KINDS:
            await preferences.set_consent(conn, principal, kind=kind, granted=kind in form)
    return RedirectResponse("/dashboard/profile?saved=1", status_code=303)


@router.post("/profile/preferences", response_class=HTMLResponse)
async def change_preferences(request: Request, principal: Principal = Depends(viewer)) -> Response:
    form = await request.form()
    t = _t(request)
    if not _session_form_ok(request, str(form.get("csrf", ""))[:100]):
        return await _profile_page(request, principal, status=403, error=t("form.expired"))
    raw = {
        "channels": [c for c in preferences.CHANNELS if f"channel_{c}" in form],
        "alert_min_severity": str(form.get("alert_min_severity", "medium"))[:20],
        "opted_out": [k for k in preferences.OPT_OUTS if f"out_{k}" in form],
        "quiet_from": str(form.get("quiet_from", ""))[:8] or None,
        "quiet_until": str(form.get("quiet_until", ""))[:8] or None,
        "zone": str(form.get("zone", "Asia/Kolkata"))[:64],
    }
    try:
        chosen = Preferences.model_validate(raw).model_dump()
        async with request.app.state.pool.connection() as conn:
            await preferences.set_preferences(conn, principal, chosen)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        return await _profile_page(
            request,
            principal,
            preferences_error=t(f"hint.{field}"),
            preferences_field=field,
            typed_chosen=_typed_chosen(raw),
        )
    except CloudError as exc:
        return await _profile_page(
            request,
            principal,
            preferences_error=str(exc),
            preferences_field=exc.errors[0][0] if exc.errors else None,
            typed_chosen=_typed_chosen(raw),
        )
    saved = "/dashboard/profile?preferences_saved=1"
    if "sms" in chosen["channels"]:
        async with request.app.state.pool.connection() as conn:
            me = await accounts.profile(conn, principal)
        if not me.get("phone"):
            saved += "&no_phone=1"
    return RedirectResponse(f"{saved}#preferences", status_code=303)
