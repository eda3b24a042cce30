"""Signing in and out of the web app.

The session is the API's own token pair, kept in HttpOnly, SameSite=Strict cookies; a CSRF token
rides beside them for the changes pages make through the API (double submit, see `api.deps`). The
login form carries its own token, so no other site can sign a visitor in to an account of its
choosing.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..api.deps import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, client_address, jwt_secret
from ..errors import TooManyRequests, Unauthorized
from ..services import auth
from .i18n import pick_language, translator
from .web import render

router = APIRouter(prefix="/dashboard", include_in_schema=False)
LOGIN_COOKIE = "gg_login"  # the login form's own CSRF token (there is no session yet)


def set_session(response: Response, pair: auth.TokenPair, secure: bool) -> None:
    common = {"httponly": True, "samesite": "strict", "secure": secure}
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, **common)
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, path="/dashboard", **common)
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), samesite="strict", secure=secure)


def safe_next(next_url: str) -> str:
    """Only a page of this app, never another site."""
    ok = next_url.startswith("/dashboard") and "//" not in next_url and "\\" not in next_url
    return next_url if ok else "/dashboard"


def _login_form(
    request: Request,
    next_url: str,
    error: str | None,
    status: int = 200,
    notice: str | None = None,
):
    """The login form, with a fresh token in a hidden field and in a SameSite=Strict cookie:
    a form posted from another site carries neither the cookie nor a matching field."""
    token = secrets.token_urlsafe(24)
    t = translator(pick_language(request.headers.get("accept-language")))
    response = render(
        request,
        "login.html",
        None,
        status=status,
        title=t("login.title"),
        next=safe_next(next_url),
        error=error,
        notice=notice,
        login_token=token,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/dashboard/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from (Origin); it must be this site when named."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/dashboard", ended: bool = False) -> Response:
    t = translator(pick_language(request.headers.get("accept-language")))
    return _login_form(request, next, None, notice=t("login.ended") if ended else None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    email: str = Form(..., max_length=254),
    password: str = Form(..., max_length=256),
    next: str = Form("/dashboard", max_length=500),
    login_token: str = Form("", max_length=100),
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if (
        not _same_origin(request)
        or not expected
        or not secrets.compare_digest(expected.encode(), login_token.encode())
    ):
        t = translator(pick_language(request.headers.get("accept-language")))
        return _login_form(request, next, t("login.expired"), status=403)
    client = client_address(request)
    try:
        pair = await auth.login(
            request.app.state.pool,
            email=email,
            password=password,
            client_ip=client,
            settings=request.app.state.settings,
            secret=jwt_secret(request),
        )
    except (Unauthorized, TooManyRequests) as exc:
        return _login_form(request, next, str(exc))
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session(response, pair, request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard/login")
    return response


@router.get("/session/refresh")
async def refresh(request: Request, next: str = "/dashboard") -> Response:
    token = request.cookies.get(REFRESH_COOKIE)
    target = f"/dashboard/login?next={quote(safe_next(next))}"
    if not token:
        return RedirectResponse(target, status_code=303)
    try:
        async with request.app.state.pool.connection() as conn:
            pair = await auth.refresh(
                conn,
                refresh_token=token,
                settings=request.app.state.settings,
                secret=jwt_secret(request),
            )
    except Unauthorized:
        # there was a session and it cannot go on: say so on the sign-in page
        return RedirectResponse(f"{target}&ended=1", status_code=303)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session(response, pair, request.url.scheme == "https")
    return response


@router.get("/logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        async with request.app.state.pool.connection() as conn:
            await auth.logout(conn, refresh_token=token)
    response = RedirectResponse("/dashboard/login", status_code=303)
    for name in (ACCESS_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name)
    response.delete_cookie(REFRESH_COOKIE, path="/dashboard")
    return response
