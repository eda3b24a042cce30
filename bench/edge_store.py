"""Edge store and sync throughput, and the daemon's memory.

Prints JSON lines:

    store_samples_per_s     readings appended with durable commits (synchronous=FULL, WAL),
                            1,000 a transaction, as the daemon's writer does       target >= 50,000
    intake_samples_per_s    the same through the daemon's intake (clock flag, local checks)
    drain_readings_per_s    a 1,000,000-reading backlog synced into `gridgate cloud serve`
                            (its own process, real PostgreSQL), cursor advanced per ack
                                                                                  target >= 20,000
    downsample_rows_per_s   one disk-budget pass (15-minute intervals) over an unsent log of
                            `--samples` readings of 32 meters, a power and an energy read a second
    rss_mb                  the daemon (`gridgate edge run`, its own process) polling 32 meters
                            on simulated Modbus TCP, after warming up              target <= 80

Database: GRIDGATE_BENCH_DATABASE_URL's server, else an embedded PostgreSQL.
Run: python bench/edge_store.py [--backlog 1000000] [--samples 300000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from cloud_ingest import cloud_server, fresh_database, setup

from edge.config import load_config
from edge.daemon import Daemon
from edge.store import NewReading, Store
from edge.sync import Syncer
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import Quality, Sample, public_key_text, write_private_key

try:
    from protocols.reader import MeterValue
except ImportError:  # a checkout from before readers handed plain values on
    MeterValue = None

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "edge_store", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


def readings(count: int, meters: int = 32) -> list[NewReading]:
    out = []
    for i in range(count):
        step, meter = divmod(i, meters * 2)
        quantity = "1.8.0" if meter % 2 else "1.7.0"
        out.append(
            NewReading(f"m{meter // 2:02d}", quantity, T0 + timedelta(seconds=step), 1.0 + i % 97)
        )
    return out


def bench_store(folder: Path, count: int) -> None:
    store = Store(folder / "store.sqlite")
    rows = readings(count)
    started = time.perf_counter()
    for i in range(0, count, 1000):
        store.append(rows[i : i + 1000])
    elapsed = time.perf_counter() - started
    store.close()
    emit(
        "store_samples_per_s",
        count / elapsed,
        "samples/s",
        target=">= 50000",
        commits=count // 1000,
    )


def bench_downsample(folder: Path, count: int) -> None:
    store = Store(folder / "downsample.sqlite")
    rows = readings(count)
    for i in range(0, count, 10_000):
        store.append(rows[i : i + 10_000])
    started = time.perf_counter()
    removed, _ = store._downsample(900, 900, 0)
    elapsed = time.perf_counter() - started
    store.close()
    emit("downsample_rows_per_s", count / elapsed, "rows/s", removed=removed)


def gateway_config(folder: Path, gateway: str, url: str, buses: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edge.toml"
    path.write_text(
        f"""
[gateway]
id = "{gateway}"
data_dir = "data"

[cloud]
url = "{url}"
batch_readings = 10000
backfill_readings_per_s = 1000000000

[clock]
require_ntp = false
{buses}
"""
    )
    return path


def value(meter: str, quantity: str, ts: datetime, reading: float) -> object:
    """A value as a Modbus reader hands it on: a `MeterValue` where the code has them, else a
    Sample (built without validating, as cheaply as a Sample can be)."""
    if MeterValue is not None:
        return MeterValue(meter, quantity, ts, reading)
    return Sample.model_construct(
        meter_id=meter, quantity=quantity, ts=ts, value=reading, quality=Quality.OK, unit=""
    )


def healthy_read(i: int, step: int) -> list[tuple[str, float]]:
    """One read of a meter of a healthy fleet, a second after its last: values within their
    bands that move a little (no check fires; the checks still run in full), registers rising
    with the power drawn."""
    jitter = (i % 7) * 0.1
    return [
        ("1.7.0", 2.0 + jitter),
        ("32.7.0", 230.0 + jitter),
        ("52.7.0", 231.0 - jitter),
        ("72.7.0", 229.5 + jitter),
        ("14.7.0", 50.0 + jitter / 10),
        ("13.7.0", 0.95),
        ("1.8.0", 1000.0 + step * 2.0 / 3600),
        ("3.8.0", 200.0 + step * 0.5 / 3600),
    ]


async def bench_intake(folder: Path, count: int) -> None:
    config = load_config(gateway_config(folder / "intake", "gw-intake", "http://unused"))
    daemon = Daemon(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    daemon._open_store()
    daemon._synced = True
    per_read = 8  # one meter's read: a handful of quantities
    started = time.perf_counter()
    for i in range(count // per_read):
        meter, step = f"m{i % 32:02d}", i // 32
        ts = T0 + timedelta(seconds=step)
        samples = [value(meter, q, ts, v) for q, v in healthy_read(i, step)]
        await daemon.on_samples(meter, samples, False)
        if i % 125 == 0:
            await daemon._flush()
    await daemon._flush()
    elapsed = time.perf_counter() - started
    events = (await daemon.store(Store.backlog))[1]
    daemon.store.shutdown()
    emit(
        "intake_samples_per_s",
        count / elapsed,
        "samples/s",
        target=">= 150000",
        commits=count // 1000,
        events=events,
        note="a healthy fleet's reads: repeat filter, clock flag, checks, store",
    )


async def bench_drain(folder: Path, backlog: int) -> None:
    with fresh_database(folder) as url:
        gateways = await setup(url, 1)
        async with cloud_server(url, folder) as base:
            code, (token, key) = next(iter(gateways.items()))
            async with httpx.AsyncClient(base_url=base) as client:
                enrolled = await client.post(
                    "/api/v1/gateways/enroll",
                    json={"token": token, "gateway_id": code, "public_key": public_key_text(key)},
                )
                enrolled.raise_for_status()
            config = load_config(gateway_config(folder / "drain", code, base))
            write_private_key(config.key_path, key)
            store = Store(config.store_path)
            rows = readings(backlog)
            for i in range(0, backlog, 50_000):
                store.append(rows[i : i + 50_000])
            store.close()
            daemon = Daemon(config)
            daemon._open_store()
            syncer = Syncer(
                gateway_id=code,
                config=config.cloud,
                key=key,
                store_call=daemon.store,
                clock_state=lambda: (True, 0.0),
            )
            started = time.perf_counter()
            sent = await syncer.drain()
            elapsed = time.perf_counter() - started
            await syncer.close()
            left = (await daemon.store(Store.backlog))[0]
            daemon.store.shutdown()
            emit(
                "drain_readings_per_s",
                sent / elapsed,
                "readings/s",
                target=">= 20000",
                backlog=backlog,
                left=left,
                seconds=round(elapsed, 1),
            )


async def bench_rss(folder: Path, meters: int = 32) -> None:
    clock = SimClock()
    models = ["sdm630", "sdm120", "em24", "iem3000"]
    servers = []
    buses = []
    for bus in range(4):
        specs = [MeterSpec(unit, models[unit % 4]) for unit in range(1, meters // 4 + 1)]
        server = ModbusTcpServer(
            build_modbus_meters(specs, clock, seed=bus, turnaround_s=0.002), "127.0.0.1", 0
        )
        await server.start()
        servers.append(server)
        meter_toml = "".join(
            f'\n[[buses.meters]]\nid = "b{bus}-u{s.unit_id}"\nunit = {s.unit_id}\n'
            f'profile = "{s.model}"\nfast_s = 1.0\nslow_s = 5.0\n'
            for s in specs
        )
        buses.append(
            f'\n[[buses]]\nname = "tcp-{bus}"\nkind = "modbus-tcp"\nhost = "127.0.0.1"\n'
            f"tcp_port = {server.port}\n{meter_toml}"
        )
    config = gateway_config(folder / "rss", "gw-rss", "http://127.0.0.1:9", "".join(buses))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridgate",
        "--log-level",
        "ERROR",
        "edge",
        "run",
        "--config",
        str(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.sleep(20)
        status = await asyncio.to_thread(Path(f"/proc/{process.pid}/status").read_text)
        rss_kb = int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        )
        store = Store(folder / "rss" / "data" / "edge.sqlite")
        taken = sum(1 for _ in store.all_readings())
        store.close()
        emit("rss_mb", rss_kb / 1024, "MB", target="<= 80", meters=meters, readings_taken=taken)
    finally:
        process.terminate()
        await process.wait()
        for server in servers:
            await server.stop()


async def main(backlog: int, samples: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bench_store(folder, samples)
        bench_downsample(folder, samples)
        await bench_intake(folder, samples)
        await bench_drain(folder, backlog)
        await bench_rss(folder)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300_000)
    args = parser.parse_args()
    asyncio.run(main(args.backlog, args.samples))
