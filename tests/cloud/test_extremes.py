"""Every date, time and number the API accepts, at its extremes: no 5xx.

For each operation of the OpenAPI document, a valid request (the authorization matrix's, as a
super admin, on the caller's own objects) is sent again with one parameter or body field at a
time replaced by values at and beyond the edges of its type: year 1 and year 9999, impossible
dates, 2^63 and -2^63, 1e308, NaN and infinity. The answer may be a success or a 4xx naming the
field; never a server error.
"""

from __future__ import annotations

import json
from typing import Any

from tests.cloud.conftest import Served
from tests.cloud.test_authorization_matrix import (
    EXPECTATIONS,
    PUBLIC,
    add_keys,
    add_notifications,
    fill,
)
from tests.cloud.world import PASSWORD, add_actor, build_world

EXTREMES: dict[str, list[Any]] = {
    "integer": [0, -1, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 10**40, 1.5, "NaN"],
    "number": ["1e400", "-1e400", "NaN", "Infinity", "-0", "99999999999999999999.999", 1e308],
    "date": ["0001-01-01", "9999-12-31", "2026-02-30", "10000-01-01", "-0001-01-01"],
    "date-time": [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-12:00",
        "9999-12-31T23:59:59Z",
        "2026-10-01T00:00:00",
        "2026-13-01T00:00:00Z",
    ],
}


def _kind(schema: dict[str, Any], components: dict[str, Any]) -> str | None:
    """integer, number, date or date-time (or None) for a parameter's or field's schema."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    for option in schema.get("anyOf", []):
        found = _kind(option, components)
        if found:
            return found
    if schema.get("type") in ("integer", "number"):
        return schema["type"]
    if schema.get("type") == "string" and schema.get("format") in ("date", "date-time"):
        return schema["format"]
    if schema.get("type") == "string" and "pattern" in schema and "\\d" in schema["pattern"]:
        return "number"  # Decimal amounts travel as strings
    return None


def _fields(operation: dict[str, Any], components: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(where, name, kind) of every numeric or temporal input of an operation."""
    found = []
    for parameter in operation.get("parameters", []):
        kind = _kind(parameter["schema"], components)
        if kind:
            found.append((parameter["in"], parameter["name"], kind))
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        schema = body["schema"]
        if "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        for name, field in schema.get("properties", {}).items():
            kind = _kind(field, components)
            if kind:
                found.append(("body", name, kind))
    return found


async def test_no_extreme_value_makes_a_server_error(served_app: Served) -> None:
    async with served_app.pool.connection() as conn:
        world = await build_world(conn)
        email = await add_actor(conn, world, "SUPER_ADMIN")
        await add_keys(conn, world)
        await add_notifications(conn, world)
        await add_notifications(conn, world)
    login = await served_app.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    headers = {
        "Authorization": f"Bearer {login.json()['access_token']}",
        "Content-Type": "application/json",
    }
    schema = (await served_app.client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    sent, failures = 0, []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            expect = EXPECTATIONS[(method.upper(), path)]
            if expect.permission == PUBLIC or path.endswith("/stream"):
                continue
            for where, name, kind in _fields(operation, components):
                for value in EXTREMES[kind]:
                    req = expect.build(world, world.site("own"))
                    path_params, query = dict(req.path), dict(req.query)
                    body = dict(req.json) if isinstance(req.json, dict) else req.json
                    if where == "path":
                        path_params[name] = value
                    elif where == "query":
                        query[name] = value
                    else:
                        body = {**(body or {}), name: value}
                    raw = None if body is None else json.dumps(body).replace('"1e400"', "1e400")
                    response = await served_app.client.request(
                        method.upper(),
                        fill(path, path_params),
                        params=query or None,
                        content=raw,
                        headers=headers,
                    )
                    sent += 1
                    if response.status_code >= 500:
                        failures.append((method, path, where, name, value, response.text[:200]))
    assert sent > 300
    assert not failures, "\n".join(map(str, failures))
