"""The web surface: security headers on every kind of response, /metrics behind a token, the
login form refusing cross-site posts, JSON in pages that text cannot break out of, bounded
request bodies, and the API reference working without internet."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cloud.services import auth
from tests.cloud.conftest import (
    METRICS_TOKEN,
    Cloud,
    client_from,
    open_cloud,
    random_address,
    staff_token,
)

PASSWORD = "correct horse battery"
HEADERS = (
    "content-security-policy",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
)


def _app(cloud: Cloud):
    return cloud.client._transport.app  # type: ignore[attr-defined]


async def _admin_token(cloud: Cloud, board: str) -> str:
    return await staff_token(cloud, board)


def _check_headers(response: httpx.Response, what: str) -> None:
    for name in HEADERS:
        assert name in response.headers, (what, name, dict(response.headers))
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy, what
    if "script-src" in policy:
        assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0], what
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_every_kind_of_response_carries_the_headers(cloud: Cloud, board: str) -> None:
    token = await _admin_token(cloud, board)
    bearer = {"Authorization": f"Bearer {token}"}
    cases = {
        "API JSON": cloud.client.get("/api/v1/auth/me", headers=bearer),
        "API error 401": cloud.client.get("/api/v1/auth/me"),
        "API error 404": cloud.client.get("/api/v1/meters/999999999", headers=bearer),
        "API error 422": cloud.client.get("/api/v1/meters?limit=0", headers=bearer),
        "unknown path": cloud.client.get("/no/such/page"),
        "unknown page": cloud.client.get("/dashboard/no/such/page"),
        "dashboard HTML": cloud.client.get("/dashboard/login"),
        "redirect": cloud.client.get("/"),
        "static file": cloud.client.get("/dashboard/static/app.js"),
        "docs page": cloud.client.get("/docs"),
        "docs asset": cloud.client.get("/docs/assets/swagger-ui.css"),
        "docs script": cloud.client.get("/docs/local/swagger-init.js"),
        "OpenAPI": cloud.client.get("/openapi.json"),
        "health": cloud.client.get("/health"),
        "too large": cloud.client.post("/api/v1/auth/login", content=b"x" * (2 * 1024 * 1024)),
    }
    for what, call in cases.items():
        response = await call
        _check_headers(response, what)
        # someone's data is never kept by the browser; the app's own files may be
        kept = what in ("static file", "docs asset", "docs script")
        assert (response.headers.get("cache-control") == "no-store") != kept, what
    assert "strict-transport-security" not in (await cloud.client.get("/health")).headers


async def test_a_mistyped_page_address_gets_the_apps_page_and_the_api_its_json(
    cloud: Cloud, board: str
) -> None:
    page = await cloud.client.get("/dashboard/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "No page of the app has this address" in page.text
    token = await _admin_token(cloud, board)
    # signed in: the page has the app's navigation
    signed_in = await cloud.client.get(
        "/dashboard/meterz", headers={"Cookie": f"gg_access={token}"}
    )
    assert signed_in.status_code == 404
    assert 'href="/dashboard/meters"' in signed_in.text, signed_in.text
    for mistyped in ("/dashboard/consumers/abc", "/dashboard/meters/1e9x"):  # not an id
        wrong = await cloud.client.get(mistyped)
        assert wrong.status_code == 404, mistyped
        assert "No page of the app has this address" in wrong.text, mistyped
    api = await cloud.client.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found"}


async def test_hsts_over_https(cloud: Cloud) -> None:
    async with client_from(_app(cloud), random_address(), scheme="https") as client:
        response = await client.get("/dashboard/login")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_a_server_error_carries_the_headers_too(database_url: str, tmp_path: Path) -> None:
    async with open_cloud(database_url, tmp_path / "c") as cloud:
        app = _app(cloud)

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("a bug")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as client:
            response = await client.get("/boom")
        assert response.status_code == 500
        _check_headers(response, "500")


async def test_metrics_need_the_token_or_a_public_setting(
    cloud: Cloud, database_url: str, tmp_path: Path
) -> None:
    assert (await cloud.client.get("/metrics")).status_code == 401
    wrong = await cloud.client.get("/metrics", headers={"Authorization": "Bearer guess"})
    assert wrong.status_code == 401
    right = await cloud.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert right.status_code == 200
    assert "gridgate_http_requests_total" in right.text
    async with open_cloud(database_url, tmp_path / "off", metrics_token=None) as closed:
        off = await closed.client.get("/metrics")
        assert off.status_code == 404
        assert "GRIDGATE_METRICS_TOKEN" in off.json()["detail"]
    async with open_cloud(
        database_url, tmp_path / "open", metrics_token=None, metrics_public=True
    ) as public:
        assert (await public.client.get("/metrics")).status_code == 200


async def test_the_login_form_refuses_a_cross_site_post(cloud: Cloud, board: str) -> None:
    """Login CSRF: another site's form must not sign a visitor in to an account of its choice."""
    email = f"{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(
            conn, email=email, password=PASSWORD, role="BOARD_ADMIN", board_code=board, actor="t"
        )
    form = {"email": email, "password": PASSWORD, "next": "/dashboard"}
    async with client_from(_app(cloud), random_address()) as victim:
        forged = await victim.post(
            "/dashboard/login", data=form, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403
        assert "gg_access" not in forged.cookies
        no_token = await victim.post("/dashboard/login", data=form)
        assert no_token.status_code == 403
        page = await victim.get("/dashboard/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        elsewhere = await victim.post(
            "/dashboard/login",
            data={**form, "login_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        page = await victim.get("/dashboard/login")
        token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
        signed_in = await victim.post(
            "/dashboard/login",
            data={**form, "login_token": token},
            headers={"Origin": "http://cloud"},
        )
        assert signed_in.status_code == 303
        assert "gg_access" in signed_in.cookies


async def test_text_in_embedded_json_cannot_break_the_page(cloud: Cloud, board: str) -> None:
    """A gateway-supplied message such as `<!--<script>` kept the data element open."""
    hostile = "<!--<script>alert(1)</script>&amp;\u2028"
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO alerts (board_id, subject, kind, severity, source, message, opened_at,"
            " last_seen_at) SELECT id, 'board:' || id, 'outage', 'high', 'edge', %s, now(), now()"
            " FROM boards WHERE code = %s",
            (hostile, board),
        )
        await conn.commit()
    token = await _admin_token(cloud, board)
    async with client_from(_app(cloud), random_address()) as browser:
        browser.cookies.set("gg_access", token)
        page = await browser.get("/dashboard/alerts")
    assert page.status_code == 200
    data = page.text.split('id="page-data">', 1)[1].split("</script>", 1)[0]
    for character in "<>&":
        assert character not in data
    assert "\\u003c!--\\u003cscript\\u003e" in data
    assert "\u2028" not in data


@pytest.fixture
def big_body() -> bytes:
    return b'{"email": "a@b.in", "password": "' + b"x" * (20 * 1024 * 1024) + b'"}'


async def test_request_bodies_are_bounded_before_they_are_read(
    cloud: Cloud, big_body: bytes
) -> None:
    declared = await cloud.client.post(
        "/api/v1/auth/login", content=big_body, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert "limit" in declared.json()["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for start in range(0, len(big_body), 65536):
            yield big_body[start : start + 65536]

    streamed = await cloud.client.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    form = await cloud.client.post(
        "/dashboard/login",
        content=b"email=" + b"a" * (2 * 1024 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413


async def test_the_api_reference_needs_no_internet(cloud: Cloud) -> None:
    for page in ("/docs", "/redoc"):
        html = (await cloud.client.get(page)).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), (page, source)  # nothing from another origin
            assert (await cloud.client.get(source)).status_code == 200, source
        assert "<script>" not in html  # no inline script


async def test_the_console_takes_a_wheel_as_large_as_the_api_does(cloud: Cloud) -> None:
    """The software page's upload form may carry a 50 MB wheel; any other page's form may not."""
    wheel = b"x" * (2 * 1024 * 1024)
    kind = {"content-type": "multipart/form-data; boundary=b"}
    taken = await cloud.client.post("/dashboard/software/wheels", content=wheel, headers=kind)
    assert taken.status_code != 413  # read (and here refused for want of a session)
    other = await cloud.client.post("/dashboard/software/releases", content=wheel, headers=kind)
    assert other.status_code == 413
    too_big = b"x" * (50 * 1024 * 1024 + 65 * 1024)
    refused = await cloud.client.post("/dashboard/software/wheels", content=too_big, headers=kind)
    assert refused.status_code == 413


async def test_a_deployments_notice_is_at_the_top_of_every_page(
    database_url: str, tmp_path: Path
) -> None:
    notice = "Maintenance tonight, 22:00-23:00 IST: the app may not answer."
    async with open_cloud(database_url, tmp_path / "n", notice=notice) as cloud:
        for path in ("/dashboard/login", "/dashboard/no-such-page"):
            page = await cloud.client.get(path)
            assert f'<p class="notice" id="site-notice" role="note">{notice}</p>' in page.text
    async with open_cloud(database_url, tmp_path / "quiet") as cloud:
        assert 'id="site-notice"' not in (await cloud.client.get("/dashboard/login")).text
