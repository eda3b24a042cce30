"""What every page of the web app shares: the viewer (from the session cookie, checked like any
API call), the templates with their words (`i18n`) and formats (`formats`), the table helpers
(sorting, paging, CSV) and the pages for "not allowed" and "not found".

Pages ask the same services the API uses, with the viewer as principal, so each shows exactly the
viewer's scope; changes a page makes go to the API from the browser, with the CSRF token.
"""

from __future__ import annotations

import csv
import functools
import hmac
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from .. import formats
from ..access import Permission, Principal, allowed
from ..api.deps import ACCESS_COOKIE, CSRF_COOKIE, authenticate
from ..csv_cells import spreadsheet_safe
from ..errors import Unauthorized
from .i18n import client_strings, pick_language, translator

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
for _name in (
    "number",
    "money",
    "quantity",
    "local_time",
    "local_date",
    "ago",
    "change",
    "period",
    "line_rate",
):
    templates.env.filters[_name] = getattr(formats, _name)
templates.env.filters["month_name"] = formats.month_name
# a service's message ("the code is wrong; 4 tries left") as a sentence on a page
templates.env.filters["sentence"] = lambda text: (text[:1].upper() + text[1:]) if text else text


class LoginNeeded(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


async def viewer(request: Request) -> Principal:
    """The viewer, from the session cookie, if the session still stands (as for the API)."""
    token = request.cookies.get(ACCESS_COOKIE)
    if not token:
        raise LoginNeeded(_here(request))
    try:
        return await authenticate(request, token)
    except Unauthorized:
        raise LoginNeeded(_here(request)) from None


def csrf_ok(request: Request, csrf: str) -> bool:
    """A signed-in user's form carries the session's CSRF token (double submit)."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), csrf.encode())


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


@functools.cache
def _strings_json(language: str) -> str:
    """The catalog as the page embeds it (the same for every page in a language)."""
    return script_json(client_strings(language))


def script_json(value: Any) -> str:
    """JSON for a <script type="application/json"> element: every <, > and & escaped (with the
    two line separators JavaScript treats as line ends), so no text a gateway or a user wrote can
    close the element or open a comment inside it."""
    text = json.dumps(value, default=str)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def render(
    request: Request,
    name: str,
    principal: Principal | None,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    language = pick_language(request.headers.get("accept-language"))
    t = translator(language)

    def can(permission: str) -> bool:
        return principal is not None and allowed(principal.role, Permission(permission))

    response = templates.TemplateResponse(
        request,
        name,
        {
            "principal": principal,
            "can": can,
            "t": t,
            "lang": language,
            "strings": _strings_json(language),
            "now": datetime.now(UTC),
            "path": request.url.path,
            "site_notice": getattr(request.app.state, "settings", None)
            and request.app.state.settings.notice,
            **context,
        },
    )
    response.status_code = status
    return response


def not_allowed(request: Request, principal: Principal, permission: Permission) -> Response:
    t = translator(pick_language(request.headers.get("accept-language")))
    return render(
        request,
        "message.html",
        principal,
        status=403,
        title=t("page.not_allowed"),
        message=t("page.not_allowed_text", permission=t("perm." + permission.value)),
    )


async def unknown_page(request: Request) -> Response:
    """An address under /dashboard that no page answers: the not-found page, in the app's
    frame (signed in or not), rather than the API's JSON."""
    principal = None
    token = request.cookies.get(ACCESS_COOKIE)
    if token:
        try:
            principal = await authenticate(request, token)
        except Unauthorized:
            principal = None
    return not_found(request, principal, None)


def not_found(request: Request, principal: Principal | None, what: str | None) -> Response:
    """The not-found page: `what` is not here for the viewer, or (None) no page has this
    address."""
    t = translator(pick_language(request.headers.get("accept-language")))
    return render(
        request,
        "message.html",
        principal,
        status=404,
        title=t("page.not_found"),
        message=t("page.not_found_text", what=what) if what else t("page.no_such_page"),
    )


@dataclass
class Listing:
    """A table's state from the query string: sort, direction, page, filters, search."""

    sort: str
    descending: bool
    page: int
    per_page: int
    filters: dict[str, str]
    search: str

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    def link(self, **changes: Any) -> str:
        """The query string of this listing with `changes` applied (None removes a key)."""
        params: dict[str, Any] = {
            **{k: v for k, v in self.filters.items() if v},
            "q": self.search or None,
            "sort": self.sort,
            "desc": "1" if self.descending else None,
            "page": self.page if self.page > 1 else None,
        }
        params.update(changes)
        return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})

    def sort_link(self, key: str) -> str:
        descending = not self.descending if key == self.sort else False
        return self.link(sort=key, desc="1" if descending else None, page=None)


def listing(
    request: Request,
    *,
    sorts: dict[str, str],
    default_sort: str,
    default_descending: bool = False,
    filters: tuple[str, ...] = (),
    per_page: int = 50,
) -> Listing:
    query = request.query_params
    sort = query.get("sort", default_sort)
    if sort not in sorts:
        sort = default_sort
    page = query.get("page", "1")
    return Listing(
        sort=sort,
        descending=query.get("desc") == "1" if "sort" in query else default_descending,
        page=max(1, min(int(page), 10_000)) if page.isdigit() else 1,
        per_page=per_page,
        filters={name: query.get(name, "")[:100] for name in filters},
        search=query.get("q", "")[:100],
    )


def int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 16 else None


def csv_download(name: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> Response:
    """A CSV file of `rows`, one column per header of `columns` (header -> the row's key),
    UTF-8 with a BOM so spreadsheets read the ₹, formula-like text neutralised."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows([[_cell(row.get(key)) for key in columns.values()] for row in rows])
    data = out.getvalue().encode("utf-8")
    return StreamingResponse(
        iter([data]),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _cell(value: Any) -> Any:
    """Text that a spreadsheet would take for a formula gets a leading apostrophe."""
    return spreadsheet_safe(value) if isinstance(value, str) else value


def wants_csv(request: Request) -> bool:
    return request.query_params.get("format") == "csv"


def words(request: Request):
    """The viewer's words (their browser's language, else English)."""
    return translator(pick_language(request.headers.get("accept-language")))


def table_page(
    request: Request,
    principal: Principal,
    template: str,
    *,
    title_key: str,
    state: Listing,
    rows: list[dict[str, Any]],
    total: int,
    csv_name: str,
    csv_columns: dict[str, str],
    **context: Any,
) -> Response:
    """A list page, or (with ?format=csv) the whole list as a CSV file."""
    if wants_csv(request):
        return csv_download(csv_name, csv_columns, rows)
    return render(
        request,
        template,
        principal,
        title=words(request)(title_key),
        state=state,
        page_rows=rows,
        total=total,
        **context,
    )


def page_size(request: Request, state: Listing) -> tuple[int, int]:
    """(limit, offset): one page, or everything (up to the listings' maximum) for a CSV."""
    if wants_csv(request):
        return 10_000, 0
    return state.per_page, state.offset
