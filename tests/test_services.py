"""The session's services are real: a PostgreSQL that runs SQL, a broker that delivers messages."""

from __future__ import annotations

import asyncio

import aiomqtt
import psycopg

from tests.support.services import MqttBroker


def test_database_is_real_postgresql_and_empty(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        assert int(version) >= 140000
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
        assert tables == 0 or conn.execute("SELECT current_database()").fetchone()[0].startswith(
            "gridgate_test_"
        )
        conn.execute("CREATE TEMP TABLE t (x numeric)")
        conn.execute("INSERT INTO t VALUES (0.1), (0.2)")
        assert str(conn.execute("SELECT sum(x) FROM t").fetchone()[0]) == "0.3"


async def test_broker_delivers_retained_messages(mqtt: MqttBroker) -> None:
    topic = f"{mqtt.topic_prefix}/fixture/retained"
    async with aiomqtt.Client(mqtt.host, mqtt.port) as publisher:
        await publisher.publish(topic, b"hello", qos=1, retain=True)
    async with aiomqtt.Client(mqtt.host, mqtt.port) as subscriber:
        await subscriber.subscribe(topic, qos=1)
        async with asyncio.timeout(10):
            async for message in subscriber.messages:
                assert message.payload == b"hello"
                assert message.retain
                break
        await subscriber.publish(topic, b"", retain=True)  # clear it for the next session
