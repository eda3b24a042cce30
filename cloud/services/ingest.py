"""Ingest of signed batches (docs/architecture.md: the sync contract).

Order of work: the gateway (named in a header) must exist and be active; the body is checked
for size, its signature verified over the exact bytes, decompressed with a bound
(`shared.unseal`); bytes taken before (their SHA-256 is on record) are answered from the record
without a parse; else they are parsed (`shared.decode_received_batch`: the contract's checks,
the readings kept as plain dicts). Only then is anything written, in one transaction: meters
first seen are registered under the gateway's board, readings are stored once each
(`ingest_readings`: COPY straight into the table when none of them can be there already, else
through a staging table and `INSERT ... ON CONFLICT DO NOTHING`), events by (gateway, seq)
likewise, the heartbeat is recorded, and the batch id and digest are kept so a replay is answered
from the record. The Ack is returned only after the commit.

What a gateway may write: readings of the meters assigned to it, and of meters the cloud has
never seen on its board, which are registered as its own and await an admin's confirmation
(`POST /meters/{id}/confirm`). Readings of any other meter (assigned to another gateway, or to
none) are refused, meter by meter, in the Ack's `refused` list; the rest of the batch is stored.
A gateway's events about such a meter are kept, without the link to the meter.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared import (
    Ack,
    BatchInvalid,
    BatchTooLarge,
    EncodingError,
    Heartbeat,
    KeyInvalid,
    ReceivedBatch,
    Refusal,
    SignatureInvalid,
    decode_received_batch,
    load_public_key,
    unseal,
)

from ..errors import Forbidden, InvalidInput, PayloadTooLarge, Unauthorized
from ..settings import CloudSettings
from . import aggregates, alerts, audit, gateway_control, ingest_readings, software
from .ingest_readings import Series

log = structlog.get_logger(__name__)


async def _gateway(conn: AsyncConnection, code: str | None) -> dict:
    if not code:
        raise Unauthorized("X-Gridgate-Gateway header is missing")
    cursor = await conn.execute(
        "SELECT g.id, g.gateway_code, g.board_id, g.status, g.public_key, b.time_zone"
        " FROM gateways g JOIN boards b ON b.id = g.board_id WHERE g.gateway_code = %s",
        (code,),
    )
    gateway = await cursor.fetchone()
    if gateway is None:
        raise Unauthorized(f"gateway {code} is not enrolled")
    if gateway["status"] != "active":
        raise Forbidden(f"gateway {code} is revoked; re-enroll it with a new token")
    return gateway


def _check_times(
    batch: ReceivedBatch, spans: dict[Series, list[datetime]], settings: CloudSettings
) -> None:
    if not spans:
        return
    now = datetime.now(UTC)
    earliest = now - timedelta(days=settings.ingest_max_age_days)
    latest = now + timedelta(seconds=settings.ingest_max_future_s)
    first = min(span[0] for span in spans.values())
    if earliest <= first and max(span[1] for span in spans.values()) <= latest:
        return
    bad = [
        (
            f"readings.{i}.ts",
            f"{r['ts'].isoformat()} is outside the accepted window "
            f"{earliest:%Y-%m-%d} .. {latest:%Y-%m-%d %H:%M}Z",
        )
        for i, r in enumerate(batch.readings)
        if not earliest <= r["ts"] <= latest
    ]
    if bad:
        raise InvalidInput(
            f"{len(bad)} readings carry impossible timestamps (is the gateway clock right?)",
            errors=bad[:20],
        )


def _months(batch: ReceivedBatch, spans: dict[Series, list[datetime]]) -> set[date]:
    """The months the readings fall in (UTC): their partitions."""
    ends = {date(ts.year, ts.month, 1) for span in spans.values() for ts in span}
    if len(ends) <= 1:
        return ends
    return {date(ts.year, ts.month, 1) for ts in {r["ts"] for r in batch.readings}}


async def ingest_batch(
    pool: AsyncConnectionPool,
    settings: CloudSettings,
    *,
    body: bytes,
    gateway_code: str | None,
    signature: str | None,
    content_encoding: str | None,
) -> Ack:
    async with pool.connection() as conn:
        gateway = await _gateway(conn, gateway_code)
        await conn.rollback()  # do not hold a transaction open while parsing
    try:
        raw = unseal(
            body,
            content_encoding=content_encoding,
            signature=signature,
            public_key=load_public_key(gateway["public_key"]),
        )
    except (SignatureInvalid, KeyInvalid) as exc:
        raise Unauthorized(str(exc)) from exc
    except BatchTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from exc
    except EncodingError as exc:
        raise InvalidInput(str(exc), errors=[("Content-Encoding", str(exc))]) from exc
    digest = hashlib.sha256(raw).digest()
    async with pool.connection() as conn:
        # the same bytes again (an acknowledgement lost on the way back): the answer on record,
        # for a signature check and a hash instead of a parse of 5,000 readings
        replayed = await _replayed(conn, gateway, digest=digest)
        await conn.rollback()
    if replayed is not None:
        return replayed
    try:
        batch = decode_received_batch(raw)
    except BatchInvalid as exc:
        raise InvalidInput(str(exc), errors=exc.errors) from exc
    if batch.gateway_id != gateway_code:
        raise Unauthorized(f"batch is for gateway {batch.gateway_id}, signed as {gateway_code}")
    async with pool.connection() as conn:
        # (a batch taken before under this id, its bytes not on record, is answered by the
        # write, which looks for the id in its transaction)
        spans = ingest_readings.series_spans(batch.readings)
        _check_times(batch, spans, settings)
        # partitions first, each in its own short transaction: the write below never waits on
        # (or holds) the lock that serialises a new month's creation
        for month in sorted(_months(batch, spans)):
            async with conn.transaction():
                await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        async with conn.transaction():
            return await _write(conn, gateway, batch, spans, digest)


async def _write(
    conn: AsyncConnection,
    gateway: dict,
    batch: ReceivedBatch,
    spans: dict[Series, list[datetime]],
    digest: bytes,
) -> Ack:
    # the key was checked before this transaction: hold the gateway row so a revocation or a
    # key rotation either happens before (and this batch is refused) or waits for this commit
    cursor = await conn.execute(
        "SELECT status, public_key FROM gateways WHERE id = %s FOR SHARE", (gateway["id"],)
    )
    now = await cursor.fetchone()
    if now["status"] != "active" or now["public_key"] != gateway["public_key"]:
        raise Forbidden(f"gateway {gateway['gateway_code']} was revoked or re-keyed meanwhile")
    replayed = await _replayed(conn, gateway, batch_id=batch.batch_id)
    if replayed is not None:
        return replayed
    meter_ids, refusals = await _meters(conn, gateway, batch, spans)
    accepted = (
        [r for r in batch.readings if r["meter_id"] in meter_ids] if refusals else batch.readings
    )
    refused = [
        Refusal(
            meter_id=external,
            readings=sum(1 for r in batch.readings if r["meter_id"] == external),
            reason=reason,
        )
        for external, reason in sorted(refusals.items())
    ]
    readings_new = 0
    if accepted:
        readings_new = await ingest_readings.store(conn, gateway["id"], accepted, meter_ids, spans)
        energy = [
            span
            for (meter, quantity), span in spans.items()
            if quantity == aggregates.ENERGY and meter in meter_ids
        ]
        if energy:
            await aggregates.mark_dirty(
                conn,
                gateway["board_id"],
                gateway["time_zone"],
                min(span[0] for span in energy),
                max(span[1] for span in energy),
            )
    events_new = 0
    if batch.events:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO events (gateway_id, seq, meter_id, board_id, ts, kind, status,"
                " severity, quantity, message, details)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (gateway_id, seq) DO NOTHING",
                [
                    (
                        gateway["id"],
                        e.seq,
                        meter_ids.get(e.meter_id) if e.meter_id else None,
                        gateway["board_id"],
                        e.ts,
                        e.kind,
                        e.status.value,
                        e.severity.value,
                        e.quantity,
                        e.message,
                        Jsonb(e.details),
                    )
                    for e in batch.events
                ],
            )
            events_new = max(cur.rowcount, 0)
        if events_new:
            await alerts.from_gateway_events(conn, gateway)
    heartbeat = batch.heartbeat
    await conn.execute(
        "UPDATE gateways SET last_seen_at = now(),"
        " acked_through_seq = greatest(acked_through_seq, %s),"
        " backlog_readings = coalesce(%s, backlog_readings),"
        " oldest_unsent_at = CASE WHEN %s THEN %s ELSE oldest_unsent_at END,"
        " clock_synced = coalesce(%s, clock_synced),"
        " clock_offset_s = coalesce(%s, clock_offset_s),"
        " software_version = coalesce(%s, software_version),"
        " bus_stats = CASE WHEN %s THEN %s ELSE bus_stats END,"
        " meter_health = CASE WHEN %s THEN %s ELSE meter_health END,"
        " disk_used_bytes = coalesce(%s, disk_used_bytes),"
        " disk_budget_bytes = coalesce(%s, disk_budget_bytes),"
        " config_version = coalesce(%s, config_version) WHERE id = %s",
        (
            batch.last_seq,
            heartbeat.backlog_readings if heartbeat else None,
            heartbeat is not None,
            heartbeat.oldest_unsent_ts if heartbeat else None,
            heartbeat.clock_synced if heartbeat else None,
            heartbeat.clock_offset_s if heartbeat else None,
            heartbeat.software_version if heartbeat else None,
            bool(heartbeat and heartbeat.buses),
            Jsonb([b.model_dump() for b in heartbeat.buses] if heartbeat else []),
            bool(heartbeat and heartbeat.meters),
            Jsonb([m.model_dump(mode="json") for m in heartbeat.meters] if heartbeat else []),
            heartbeat.disk_used_bytes if heartbeat else None,
            heartbeat.disk_budget_bytes if heartbeat else None,
            heartbeat.config_version if heartbeat else None,
            gateway["id"],
        ),
    )
    if heartbeat is not None:
        await _sample_health(conn, gateway["id"], heartbeat)
        await software.offer_update(conn, gateway["id"], heartbeat.software_version)
    await conn.execute(
        "INSERT INTO ingest_batches (batch_id, gateway_id, first_seq, last_seq, readings_new,"
        " events_new, refused, body_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            batch.batch_id,
            gateway["id"],
            batch.first_seq,
            batch.last_seq,
            readings_new,
            events_new,
            Jsonb([r.model_dump() for r in refused]),
            digest,
        ),
    )
    if refused:
        log.warning(
            "readings refused",
            gateway=gateway["gateway_code"],
            meters=[r.meter_id for r in refused],
            readings=sum(r.readings for r in refused),
        )
    return Ack(
        batch_id=batch.batch_id,
        acked_through_seq=batch.last_seq,
        readings_new=readings_new,
        events_new=events_new,
        refused=refused,
        commands_waiting=await gateway_control.waiting(conn, gateway["id"]),
    )


async def _replayed(
    conn: AsyncConnection,
    gateway: dict,
    *,
    batch_id: uuid.UUID | None = None,
    digest: bytes | None = None,
) -> Ack | None:
    """The answer given when this batch was taken, if it was (known by its id, or by the digest
    of its bytes among this gateway's batches): a replay changes nothing."""
    if digest is not None:
        cursor = await conn.execute(
            "SELECT batch_id, gateway_id, last_seq, refused FROM ingest_batches"
            " WHERE gateway_id = %s AND body_sha256 = %s",
            (gateway["id"], digest),
        )
    else:
        cursor = await conn.execute(
            "SELECT batch_id, gateway_id, last_seq, refused FROM ingest_batches"
            " WHERE batch_id = %s",
            (batch_id,),
        )
    seen = await cursor.fetchone()
    if seen is None:
        return None
    if seen["gateway_id"] != gateway["id"]:
        raise Unauthorized("batch id belongs to another gateway")
    return Ack(
        batch_id=seen["batch_id"],
        acked_through_seq=seen["last_seq"],
        refused=[Refusal(**r) for r in seen["refused"]],
        commands_waiting=await gateway_control.waiting(conn, gateway["id"]),
    )


HEALTH_SAMPLE = timedelta(minutes=5)  # the gateway's health history keeps a sample this often


async def _sample_health(conn: AsyncConnection, gateway_id: int, heartbeat: Heartbeat) -> None:
    """A row of the gateway's health history, unless one was kept in the last few minutes."""
    buses = heartbeat.buses
    busy = [b.utilisation for b in buses if b.utilisation is not None]
    await conn.execute(
        "INSERT INTO gateway_health (gateway_id, at, backlog_readings, clock_synced,"
        " disk_used_bytes, disk_budget_bytes, meters, meters_failing, transactions, timeouts,"
        " crc_errors, utilisation, software_version)"
        " SELECT %s, now(), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s"
        " WHERE NOT EXISTS (SELECT 1 FROM gateway_health WHERE gateway_id = %s AND at > %s)",
        (
            gateway_id,
            heartbeat.backlog_readings,
            heartbeat.clock_synced,
            heartbeat.disk_used_bytes,
            heartbeat.disk_budget_bytes,
            sum(b.meters for b in buses),
            sum(b.meters_failing for b in buses),
            sum(b.transactions for b in buses),
            sum(b.timeouts for b in buses),
            sum(b.crc_errors for b in buses),
            sum(busy) / len(busy) if busy else None,
            heartbeat.software_version,
            gateway_id,
            datetime.now(UTC) - HEALTH_SAMPLE,
        ),
    )


async def health_history(conn: AsyncConnection, gateway_id: int, *, since: datetime) -> list[dict]:
    """The gateway's health samples since `since`, oldest first (the caller checked scope)."""
    cursor = await conn.execute(
        "SELECT * FROM gateway_health WHERE gateway_id = %s AND at >= %s ORDER BY at LIMIT 2000",
        (gateway_id, since),
    )
    return await cursor.fetchall()


async def _meters(
    conn: AsyncConnection, gateway: dict, batch: ReceivedBatch, spans: dict[Series, list[datetime]]
) -> tuple[dict[str, int], dict[str, str]]:
    """(wire meter id -> meters.id for the meters this gateway may write, wire meter id -> why
    not for the others). Meters the board does not know are registered as the gateway's own,
    awaiting confirmation."""
    external = sorted(
        {meter for meter, _ in spans} | {e.meter_id for e in batch.events if e.meter_id}
    )
    if not external:
        return {}, {}
    cursor = await conn.execute(
        "INSERT INTO meters (board_id, external_id, gateway_id)"
        " SELECT %s, x, %s FROM unnest(%s::text[]) AS x"
        " ON CONFLICT (board_id, external_id) DO NOTHING RETURNING id, external_id",
        (gateway["board_id"], gateway["id"], external),
    )
    for meter in await cursor.fetchall():
        await audit.record(
            conn,
            actor=f"gateway:{gateway['gateway_code']}",
            action="discover",
            entity="meter",
            entity_id=meter["id"],
            after={"external_id": meter["external_id"], "gateway_id": gateway["id"]},
        )
    cursor = await conn.execute(
        "SELECT id, external_id, gateway_id FROM meters"
        " WHERE board_id = %s AND external_id = ANY(%s)",
        (gateway["board_id"], external),
    )
    allowed, refused = {}, {}
    for row in await cursor.fetchall():
        if row["gateway_id"] == gateway["id"]:
            allowed[row["external_id"]] = row["id"]
        elif row["gateway_id"] is None:
            refused[row["external_id"]] = (
                f"meter {row['external_id']} is registered but not assigned to this gateway;"
                " an admin assigns it in the cloud"
            )
        else:
            refused[row["external_id"]] = (
                f"meter {row['external_id']} is assigned to another gateway"
            )
    return allowed, refused
