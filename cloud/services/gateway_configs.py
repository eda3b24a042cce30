"""Each gateway's desired configuration, versioned, and the meters its scans found.

A version is made by a person with `gateway:configure` (an edit of the whole settings) or by
giving a found meter to a consumer (the meter joins its bus in a new version). Versions are
validated with the gateway's own schema (`shared.GatewaySettings`) and carry no secrets: a DLMS
password is named by reference, kept on the gateway. The newest version the gateway has not
reported on is handed over at its next contact (`hand_over`, inside the control exchange); the
gateway reports the outcome and what it runs (`record_report`). A newer version supersedes an
older one not yet applied. Every write is audited with the settings before and after.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from shared import (
    MODBUS_MODELS,
    BusSettings,
    ConfigReport,
    DesiredConfig,
    GatewaySettings,
    MeterSettings,
    ScanReport,
    literal_passwords,
)

from ..access import Permission, Principal, resolve_in_scope
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from . import audit, meters

HISTORY = 20  # versions listed with the current one


def _settings_json(settings: GatewaySettings) -> dict[str, Any]:
    return settings.model_dump(mode="json")


async def _gateway(conn: AsyncConnection, gateway_id: int, *, lock: bool = False) -> dict:
    query = (
        "SELECT id, board_id, gateway_code, status, config_version, config_settings,"
        " config_reported_at FROM gateways WHERE id = %s"
    )
    cursor = await conn.execute(query + (" FOR UPDATE" if lock else ""), (gateway_id,))
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no gateway {gateway_id}")
    return row


async def _versions(conn: AsyncConnection, gateway_id: int, limit: int) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT c.version, c.status, c.detail, c.comment, c.created_at, c.delivered_at,"
        " c.reported_at, coalesce(u.name, u.email) AS created_by_name, c.settings"
        " FROM gateway_configs c LEFT JOIN users u ON u.id = c.created_by"
        " WHERE c.gateway_id = %s ORDER BY c.version DESC LIMIT %s",
        (gateway_id, limit),
    )
    return await cursor.fetchall()


async def overview(conn: AsyncConnection, principal: Principal, gateway_id: int) -> dict[str, Any]:
    """What the gateway runs (as it last said), the newest version, and the versions before."""
    await resolve_in_scope(conn, principal, {"gateway": [gateway_id]})
    gateway = await _gateway(conn, gateway_id)
    versions = await _versions(conn, gateway_id, HISTORY)
    latest = versions[0] if versions else None
    return {
        "gateway_id": gateway_id,
        "running": {
            "version": gateway["config_version"],
            "settings": gateway["config_settings"],
            "reported_at": gateway["config_reported_at"],
        },
        "latest": latest,
        "versions": [{k: v for k, v in r.items() if k != "settings"} for r in versions],
    }


async def base_settings(conn: AsyncConnection, gateway_id: int) -> GatewaySettings:
    """What an edit starts from: the newest version, else what the gateway said it runs."""
    versions = await _versions(conn, gateway_id, 1)
    if versions:
        return GatewaySettings.model_validate(versions[0]["settings"])
    gateway = await _gateway(conn, gateway_id)
    if gateway["config_settings"]:
        return GatewaySettings.model_validate(gateway["config_settings"])
    return GatewaySettings()


async def propose(
    conn: AsyncConnection,
    principal: Principal,
    gateway_id: int,
    settings: GatewaySettings,
    *,
    comment: str | None,
    action: str = "configure",
) -> dict[str, Any]:
    """Make `settings` the gateway's next version; older versions not applied yet are
    superseded. The new version's row."""
    if not principal.may(Permission.GATEWAY_CONFIGURE):
        raise Forbidden("changing a gateway's configuration needs the gateway:configure permission")
    literal = literal_passwords(settings)
    if literal:
        raise InvalidInput(
            "the cloud keeps no meter passwords: name the secret with password_ref and keep"
            " the password in the gateway's edge.toml [secrets]",
            errors=[(where, "a password itself") for where in literal],
        )
    await resolve_in_scope(conn, principal, {"gateway": [gateway_id]})
    async with conn.transaction():
        gateway = await _gateway(conn, gateway_id, lock=True)
        if gateway["status"] != "active":
            raise Conflict(f"gateway {gateway['gateway_code']} is revoked: it takes no settings")
        before = await base_settings(conn, gateway_id)
        if before == settings and await _versions(conn, gateway_id, 1):
            raise Conflict("these settings are the newest version already: nothing to send")
        cursor = await conn.execute(
            "SELECT coalesce(max(version), 0) + 1 AS v FROM gateway_configs WHERE gateway_id = %s",
            (gateway_id,),
        )
        version = (await cursor.fetchone())["v"]
        await conn.execute(
            "UPDATE gateway_configs SET status = 'superseded' WHERE gateway_id = %s"
            " AND status IN ('pending', 'delivered')",
            (gateway_id,),
        )
        await conn.execute(
            "INSERT INTO gateway_configs (gateway_id, board_id, version, settings, comment,"
            " created_by) VALUES (%s, %s, %s, %s, %s, %s)",
            (
                gateway_id,
                gateway["board_id"],
                version,
                Jsonb(_settings_json(settings)),
                comment,
                principal.user_id,
            ),
        )
        await audit.record(
            conn,
            actor=principal.actor,
            action=action,
            entity="gateway",
            entity_id=gateway_id,
            before={"settings": _settings_json(before)},
            after={"version": version, "comment": comment, "settings": _settings_json(settings)},
        )
        return (await _versions(conn, gateway_id, 1))[0]


# --- the gateway's side (inside the signed control exchange) -------------------------------


async def hand_over(conn: AsyncConnection, gateway_id: int) -> DesiredConfig | None:
    """The newest version the gateway has not reported on, marked delivered."""
    cursor = await conn.execute(
        "UPDATE gateway_configs SET status = 'delivered',"
        " delivered_at = coalesce(delivered_at, now())"
        " WHERE id = (SELECT id FROM gateway_configs WHERE gateway_id = %s"
        "             AND status IN ('pending', 'delivered') ORDER BY version DESC LIMIT 1)"
        " RETURNING version, settings, created_at",
        (gateway_id,),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    return DesiredConfig(
        version=row["version"],
        settings=GatewaySettings.model_validate(row["settings"]),
        issued_at=row["created_at"],
    )


async def record_report(
    conn: AsyncConnection, gateway: dict[str, Any], report: ConfigReport
) -> None:
    """The gateway's word on a version (0: none from the cloud yet) and what it runs."""
    await conn.execute(
        "UPDATE gateways SET config_version = %s, config_settings = coalesce(%s, config_settings),"
        " config_reported_at = %s WHERE id = %s",
        (
            report.running_version,
            Jsonb(_settings_json(report.settings)) if report.settings else None,
            datetime.now(UTC),
            gateway["id"],
        ),
    )
    if report.version == 0:
        return
    cursor = await conn.execute(
        "UPDATE gateway_configs SET status = %s, detail = %s, reported_at = now()"
        " WHERE gateway_id = %s AND version = %s AND status IN ('pending', 'delivered',"
        " 'superseded') AND reported_at IS NULL RETURNING id",
        (report.state.value, report.detail or None, gateway["id"], report.version),
    )
    if await cursor.fetchone() is None:
        return  # told before: nothing changes
    await conn.execute(
        "UPDATE gateway_configs SET status = 'superseded' WHERE gateway_id = %s"
        " AND version < %s AND status IN ('pending', 'delivered')",
        (gateway["id"], report.version),
    )
    await audit.record(
        conn,
        actor=f"gateway:{gateway['gateway_code']}",
        action="config_" + report.state.value,
        entity="gateway",
        entity_id=gateway["id"],
        after={"version": report.version, "detail": report.detail},
    )


# --- meters a scan found ----------------------------------------------------------------------


async def record_scan(conn: AsyncConnection, gateway: dict[str, Any], report: ScanReport) -> int:
    """Keep what a technician's scan found (a meter found again is updated, not repeated);
    how many meters."""
    bus = report.bus.model_copy(update={"meters": []})
    async with conn.transaction():
        for found in report.found:
            await conn.execute(
                "INSERT INTO gateway_discoveries (gateway_id, board_id, bus, bus_name, unit, model,"
                " serial, sample, found_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (gateway_id, bus_name, unit) DO UPDATE SET bus = excluded.bus,"
                " model = excluded.model, serial = excluded.serial, sample = excluded.sample,"
                " found_at = excluded.found_at, reported_at = now()",
                (
                    gateway["id"],
                    gateway["board_id"],
                    Jsonb(bus.model_dump(mode="json")),
                    bus.name,
                    found.unit,
                    found.model,
                    found.serial,
                    Jsonb(found.sample),
                    report.sent_at,
                ),
            )
        await audit.record(
            conn,
            actor=f"gateway:{gateway['gateway_code']}",
            action="scan",
            entity="gateway",
            entity_id=gateway["id"],
            after={"bus": bus.name, "found": [f.model_dump() for f in report.found]},
        )
    return len(report.found)


_DISCOVERY = (
    "SELECT d.id, d.gateway_id, d.board_id, d.bus_name, d.bus, d.unit, d.model, d.serial,"
    " d.sample, d.found_at, d.reported_at, d.meter_id, m.external_id AS meter,"
    " m.consumer_id, c.name AS consumer_name, d.assigned_at FROM gateway_discoveries d"
    " LEFT JOIN meters m ON m.id = d.meter_id LEFT JOIN consumers c ON c.id = m.consumer_id"
)


async def discoveries(
    conn: AsyncConnection, principal: Principal, gateway_id: int
) -> list[dict[str, Any]]:
    """The meters scans found on the gateway: those waiting for a consumer first."""
    await resolve_in_scope(conn, principal, {"gateway": [gateway_id]})
    cursor = await conn.execute(
        _DISCOVERY + " WHERE d.gateway_id = %s"
        " ORDER BY d.meter_id IS NOT NULL, d.bus_name, d.unit LIMIT 500",
        (gateway_id,),
    )
    return await cursor.fetchall()


def _meter_name(gateway_code: str, row: dict[str, Any]) -> str:
    serial = re.sub(r"[^A-Za-z0-9._:-]", "", row["serial"] or "")
    name = (
        f"{row['model']}-{serial}" if serial else f"{gateway_code}-{row['bus_name']}-{row['unit']}"
    )
    return name[:64]


async def assign(
    conn: AsyncConnection,
    principal: Principal,
    discovery_id: int,
    *,
    consumer_id: int,
    external_id: str | None,
    fast_s: float,
    slow_s: float,
) -> dict[str, Any]:
    """Give a found meter to a consumer: the meter is registered (or the one of that name
    taken), assigned to the consumer and the gateway, and joins its bus in the gateway's next
    configuration version."""
    await resolve_in_scope(
        conn, principal, {"gateway_discovery": [discovery_id], "consumer": [consumer_id]}
    )
    async with conn.transaction():
        cursor = await conn.execute(
            _DISCOVERY + " WHERE d.id = %s FOR UPDATE OF d", (discovery_id,)
        )
        found = await cursor.fetchone()
        if found["meter_id"] is not None:
            raise Conflict(f"this meter was given to {found['consumer_name'] or 'a consumer'}")
        if not principal.may(Permission.METER_CREATE) or not principal.may(Permission.METER_ASSIGN):
            raise Forbidden("giving a meter to a consumer needs meter:create and meter:assign")
        if found["model"] not in MODBUS_MODELS:
            raise InvalidInput(
                f"the scan could not tell unit {found['unit']}'s model; scan it again, or add"
                " it to the configuration by hand with its model",
                errors=[("model", str(found["model"]))],
            )
        gateway = await _gateway(conn, found["gateway_id"], lock=True)
        cursor = await conn.execute(
            "SELECT name, account_no FROM consumers WHERE id = %s", (consumer_id,)
        )
        consumer = await cursor.fetchone()
        name = external_id or _meter_name(gateway["gateway_code"], found)
        cursor = await conn.execute(
            "SELECT id FROM meters WHERE board_id = %s AND external_id = %s",
            (found["board_id"], name),
        )
        existing = await cursor.fetchone()
        if existing is None:
            meter = await meters.create(
                conn,
                principal,
                board_id=found["board_id"],
                external_id=name,
                model=found["model"],
                protocol="modbus",
            )
        else:
            meter = existing
        await meters.assign(
            conn, principal, meter["id"], {"consumer_id": consumer_id, "gateway_id": gateway["id"]}
        )
        settings = await base_settings(conn, gateway["id"])
        bus = next((b for b in settings.buses if b.name == found["bus_name"]), None)
        if bus is None:
            bus = BusSettings.model_validate(found["bus"])
        taken = next((m for m in bus.meters if m.unit == found["unit"]), None)
        if taken is not None:
            raise Conflict(
                f"unit {found['unit']} on bus {bus.name} is meter {taken.id} in the configuration"
            )
        if any(m.id == name for b in settings.buses for m in b.meters):
            raise Conflict(f"meter {name} is already in this gateway's configuration")
        meter_settings = MeterSettings(
            id=name, unit=found["unit"], profile=found["model"], fast_s=fast_s, slow_s=slow_s
        )
        bus = bus.model_copy(update={"meters": [*bus.meters, meter_settings]})
        buses = [b for b in settings.buses if b.name != bus.name] + [bus]
        try:
            updated = GatewaySettings.model_validate(
                settings.model_copy(update={"buses": buses}).model_dump()
            )
        except ValueError as exc:
            raise InvalidInput(f"the configuration would not load: {exc}") from None
        version = await propose(
            conn,
            principal,
            gateway["id"],
            updated,
            comment=f"meter {name} (found by a scan) for {consumer['name']}"
            f" (account {consumer['account_no']})",
            action="assign_found_meter",
        )
        await conn.execute(
            "UPDATE gateway_discoveries SET meter_id = %s, assigned_at = now() WHERE id = %s",
            (meter["id"], discovery_id),
        )
        cursor = await conn.execute(_DISCOVERY + " WHERE d.id = %s", (discovery_id,))
        row = await cursor.fetchone()
    return row | {"config_version": version["version"]}
