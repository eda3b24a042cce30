"""Updates a gateway goes silent about: past `SILENCE` after it collected or installed one with no
further word, the periodic jobs mark it failed (audited, with the reason in words); newer ones,
answered ones and ones never collected are left alone, and a report that comes late still
counts. Times are set in the past in the database rather than waited for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from cloud.services import software
from shared import GATEWAY_HEADER, SIGNATURE_HEADER, UpdateReport, sign_body
from tests.cloud.conftest import Cloud, EnrolledGateway


async def _update(conn, gateway_id: int, version: str, command: dict, outcome=None) -> str:
    """An update to `version` whose command is as `command` says; its command's uid."""
    await conn.execute(
        "INSERT INTO software_releases (version, source) VALUES (%s, 'index')", (version,)
    )
    cursor = await conn.execute(
        "INSERT INTO gateway_commands (gateway_id, board_id, kind, args, status, created_at,"
        " expires_at, delivered_at, finished_at) SELECT id, board_id, 'update', %s, %s,"
        " now() - %s::interval, now() + interval '1 day', now() - %s::interval,"
        " now() - %s::interval FROM gateways"
        " WHERE id = %s RETURNING id, uid",
        (
            f'{{"version": "{version}"}}',
            command["status"],
            command["sent_ago"],
            command.get("delivered_ago"),
            command.get("finished_ago"),
            gateway_id,
        ),
    )
    made = await cursor.fetchone()
    await conn.execute(
        "INSERT INTO gateway_updates (gateway_id, board_id, version, from_version, command_id,"
        " outcome, created_at) SELECT id, board_id, %s, '0.1.0', %s, %s, now() - %s"
        " FROM gateways WHERE id = %s",
        (version, made["id"], outcome, command["sent_ago"], gateway_id),
    )
    return str(made["uid"])


async def test_silent_updates_fail_and_a_late_report_still_counts(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    tag = uuid.uuid4().hex[:8]
    hours = timedelta(hours=1)
    cases = {  # version -> (its command, the status expected after the jobs ran)
        f"1.0.0+{tag}": (
            {"status": "delivered", "sent_ago": 3 * hours, "delivered_ago": 3 * hours},
            "failed",
        ),
        f"1.0.1+{tag}": (
            {
                "status": "succeeded",
                "sent_ago": 4 * hours,
                "delivered_ago": 4 * hours,
                "finished_ago": 3 * hours,
            },
            "failed",
        ),
        f"1.0.2+{tag}": (
            {"status": "delivered", "sent_ago": hours / 2, "delivered_ago": hours / 2},
            "sent",
        ),
        f"1.0.3+{tag}": (
            {
                "status": "succeeded",
                "sent_ago": 4 * hours,
                "delivered_ago": 4 * hours,
                "finished_ago": hours,
            },
            "installed",
        ),
        f"1.0.4+{tag}": ({"status": "queued", "sent_ago": 5 * hours}, "sent"),  # never collected
    }
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id FROM gateways WHERE gateway_code = %s", (gateway.code,)
        )
        gateway_id = (await cursor.fetchone())["id"]
        uids = {v: await _update(conn, gateway_id, v, command) for v, (command, _) in cases.items()}
        confirmed = f"1.0.5+{tag}"
        await _update(
            conn,
            gateway_id,
            confirmed,
            {
                "status": "succeeded",
                "sent_ago": 5 * hours,
                "delivered_ago": 5 * hours,
                "finished_ago": 5 * hours,
            },
            outcome="confirmed",
        )
        await conn.commit()
        assert await software.expire_silent(conn, datetime.now(UTC)) == 2
        assert await software.expire_silent(conn, datetime.now(UTC)) == 0  # once
        cursor = await conn.execute(
            f"SELECT u.version, {software._STATUS} AS status, u.detail FROM gateway_updates u"
            " JOIN gateway_commands c ON c.id = u.command_id WHERE u.gateway_id = %s",
            (gateway_id,),
        )
        found = {row["version"]: row for row in await cursor.fetchall()}
        cursor = await conn.execute(
            "SELECT after FROM audit_log WHERE entity = 'gateway' AND entity_id = %s"
            " AND action = 'update_outcome' AND actor = 'cloud'",
            (str(gateway_id),),
        )
        audited = [row["after"] for row in await cursor.fetchall()]
    assert {v: found[v]["status"] for v in cases} == {v: want for v, (_, want) in cases.items()}
    assert found[confirmed]["status"] == "confirmed"
    assert found[f"1.0.0+{tag}"]["detail"] == (
        "no word from the gateway within 2 h of collecting the update: it never said whether it"
        " installed it"
    )
    assert found[f"1.0.1+{tag}"]["detail"].startswith(
        "no word from the gateway within 2 h of installing the update"
    )
    assert sorted(a["version"] for a in audited) == [f"1.0.0+{tag}", f"1.0.1+{tag}"]
    assert {a["outcome"] for a in audited} == {"failed"}

    # the gateway comes back and says how the installed one really ended: that counts
    late = f"1.0.1+{tag}"
    body = (
        UpdateReport(
            gateway_id=gateway.code,
            sent_at=datetime.now(UTC),
            command_id=uids[late],
            version=late,
            from_version="0.1.0",
            outcome="rolled_back",
            detail="the new version never synced a batch; went back to 0.1.0",
        )
        .model_dump_json()
        .encode()
    )
    response = await cloud.client.post(
        "/api/v1/control/software/report",
        content=body,
        headers={GATEWAY_HEADER: gateway.code, SIGNATURE_HEADER: sign_body(gateway.key, body)},
    )
    assert response.json() == {"recorded": True, "outcome": "rolled_back"}, response.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT outcome, detail FROM gateway_updates WHERE gateway_id = %s AND version = %s",
            (gateway_id, late),
        )
        assert await cursor.fetchone() == {
            "outcome": "rolled_back",
            "detail": "the new version never synced a batch; went back to 0.1.0",
        }
