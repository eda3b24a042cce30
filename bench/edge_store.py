"""Edge store and sync throughput, and the daemon's memory.

Prints JSON lines:

    store_samples_per_s     readings appended with durable commits (synchronous=FULL, WAL),
                            1,000 a transaction, as the daemon's writer does       target >= 50,000
    intake_samples_per_s    the same through the daemon's intake (repeat filter, clock flag, local
                            checks, a flush every 1,000), a healthy fleet's reads (the checks
                            all run; none fires)                                   target >= 150,000
    drain_readings_per_s    a 1,000,000-reading backlog synced into `gridgate cloud serve`
                            (its own process, real PostgreSQL), cursor advanced per ack
                                                                                  target >= 20,000
    downsample_rows_per_s   one disk-budget pass (15-minute intervals) over an unsent log of
                            `--samples` readings of 32 meters, a power and an energy read a second
    rss_mb                  the daemon (`gridgate edge run`, its own process, enrolled, its cloud
                            out of reach, default sync settings) polling 32 meters on simulated
                            Modbus TCP (4 buses of 8, a read a second), at 60 s (at 20 s too);
                            its modules byte-compiled first, as a wheel's are when installed
                                                                                  target <= 50
    rss_slope_mb_per_h      with --soak-minutes: that daemon's RSS every 10 s, least-squares
                            slope after the warm-up (--warm-minutes, else the first third)
                                                                                  target <= 0.1

Every line says whose code ran ("code"): with --baseline CHECKOUT the same figures are measured
first with that checkout's code (this script with PYTHONPATH at it), then with this tree's.
It says the allocator too ("allocator"): the script runs itself again with the daemon's
(PYTHONMALLOC=malloc, `edge.malloc.daemon_environment`), so the intake and store figures are
the daemon's; `PYTHONMALLOC=pymalloc python bench/edge_store.py` measures all of them, the
daemon's RSS too, with Python's default instead.

Database: GRIDGATE_BENCH_DATABASE_URL's server, else an embedded PostgreSQL.
Run: python bench/edge_store.py [--backlog 1000000] [--samples 300000] [--figures intake,rss]
                                [--soak-minutes 120 --warm-minutes 60] [--baseline /tmp/main]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from cloud_ingest import cloud_server, fresh_database, setup

import edge
from edge.config import load_config
from edge.daemon import Daemon
from edge.store import NewReading, Store
from edge.sync import Syncer
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import (
    Quality,
    Sample,
    configure_logging,
    generate_private_key,
    public_key_text,
    write_private_key,
)

try:
    from protocols.reader import MeterValue
except ImportError:  # a checkout from before readers handed plain values on
    MeterValue = None
try:
    from edge.malloc import run_again_with_glibc_objects
except ImportError:  # a checkout from before the daemon chose its allocator
    run_again_with_glibc_objects = None

CODE_ROOT = Path(edge.__file__).resolve().parents[1]  # whose code runs: the daemon's too
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)


CODE = os.environ.get("EDGE_STORE_BENCH_CODE", "this tree")  # whose code runs (--baseline)
# Python's objects: whose allocator (-E and -I ignore PYTHONMALLOC)
ALLOCATOR = (
    "pymalloc" if sys.flags.ignore_environment else os.environ.get("PYTHONMALLOC", "pymalloc")
)


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "edge_store", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra, "code": CODE, "allocator": ALLOCATOR}), flush=True)


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


def gateway_config(
    folder: Path, gateway: str, url: str, buses: str = "", *, sync_settings: bool = True
) -> Path:
    """A gateway's file; `sync_settings` sends large batches as fast as the cloud takes them
    (the drain's figure), else the sync settings are the defaults a gateway runs with."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edge.toml"
    fast = "batch_readings = 10000\nbackfill_readings_per_s = 1000000000\n" if sync_settings else ""
    path.write_text(
        f"""
[gateway]
id = "{gateway}"
data_dir = "data"

[cloud]
url = "{url}"
{fast}
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


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
        / 1024
    )


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MB) points, in MB an hour."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_m = sum(m for _, m in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (m - mean_m) for t, m in points) / spread * 3600 if spread else 0.0


async def bench_rss(folder: Path, soak_minutes: float, warm_minutes: float | None) -> None:
    """The daemon's RSS after 20 s and 60 s of polling 32 meters (4 Modbus TCP buses of 8, a fast
    read a second), then, with `soak_minutes`, every 10 s for that long: the slope of the RSS
    after the warm-up (`warm_minutes`, else the first third)."""
    meters = 32
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
    # an enrolled gateway (its key on disk) whose cloud cannot be reached: it polls, stores, and
    # builds and tries its batches (default settings) as a gateway offline for weeks does
    config = gateway_config(
        folder / "rss", "gw-rss", "http://127.0.0.1:9", "".join(buses), sync_settings=False
    )
    key_path = load_config(config).key_path
    key_path.parent.mkdir(parents=True, exist_ok=True)
    write_private_key(key_path, generate_private_key())
    # the daemon as installed: pip byte-compiles a wheel's modules, so a gateway never compiles
    # one at start. Compiling ours (PYTHONDONTWRITEBYTECODE, a checkout) leaves the compiler's
    # garbage in the process, some 1.2 MB; the code's packages are compiled first, as pip would
    # (into their __pycache__ folders, which git ignores).
    env = {**os.environ, "PYTHONPATH": str(CODE_ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    packages = [str(CODE_ROOT / name) for name in ("shared", "protocols", "edge", "gridgate")]
    compiled = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "compileall", "-q", *packages, env=env
    )
    if await compiled.wait() != 0:
        raise RuntimeError(f"compileall failed for {packages}")
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
        # the code this script imports, whatever the directory (`-m` puts it first on the path)
        cwd=folder,
        env=env,
    )
    started = time.monotonic()
    try:
        points: list[tuple[float, float]] = []
        for at in (20, 60):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            points.append(
                (time.monotonic() - started, await asyncio.to_thread(rss_mb, process.pid))
            )
        store = Store(folder / "rss" / "data" / "edge.sqlite")
        taken = sum(1 for _ in store.all_readings())
        store.close()
        emit(
            "rss_mb",
            points[-1][1],
            "MB",
            target="<= 50",
            meters=meters,
            at_20_s=round(points[0][1], 1),
            at_60_s=round(points[1][1], 1),
            readings_taken=taken,
        )
        if soak_minutes <= 0:
            return
        end = started + soak_minutes * 60
        while time.monotonic() < end:
            await asyncio.sleep(10)
            if process.returncode is not None:
                raise RuntimeError(f"the daemon stopped ({process.returncode}) during the soak")
            points.append(
                (time.monotonic() - started, await asyncio.to_thread(rss_mb, process.pid))
            )
        warm_s = (warm_minutes if warm_minutes is not None else soak_minutes / 3) * 60
        after = [p for p in points if p[0] >= warm_s]
        emit(
            "rss_slope_mb_per_h",
            slope_per_hour(after),
            "MB/h",
            target="<= 0.1",
            minutes=round(points[-1][0] / 60, 1),
            after_minutes=round(warm_s / 60, 1),
            samples=len(after),
            rss_first_mb=round(after[0][1], 1),
            rss_last_mb=round(after[-1][1], 1),
            rss_max_mb=round(max(m for _, m in after), 1),
        )
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
        for server in servers:
            await server.stop()


FIGURES = ("store", "downsample", "intake", "drain", "rss")


async def main(args: argparse.Namespace) -> None:
    # a SIGTERM (a `timeout`, a closed session) stops the figures as Ctrl-C does, so that the
    # daemon and the servers started are stopped too, not left running on a shared machine
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM,
        # once: `timeout` signals this process and then its group, which would cancel the stop
        lambda: None if main_task.cancelling() else main_task.cancel(),
    )
    figures = set(args.figures.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "store" in figures:
            bench_store(folder, args.samples)
        if "downsample" in figures:
            bench_downsample(folder, args.samples)
        if "intake" in figures:
            await bench_intake(folder, args.samples)
        if "drain" in figures:
            await bench_drain(folder, args.backlog)
        if "rss" in figures:
            await bench_rss(folder, args.soak_minutes, args.warm_minutes)


def run_baseline(args: argparse.Namespace) -> None:
    """This script again, with the code of another checkout (its PYTHONPATH): the same figures
    by the same bench, before this tree's, so both run under the same load."""
    command = [sys.executable, __file__, "--figures", args.figures, "--samples", str(args.samples)]
    command += ["--backlog", str(args.backlog), "--soak-minutes", str(args.soak_minutes)]
    if args.warm_minutes is not None:
        command += ["--warm-minutes", str(args.warm_minutes)]
    env = {**os.environ, "PYTHONPATH": str(args.baseline), "EDGE_STORE_BENCH_CODE": "baseline"}
    subprocess.run(command, env=env, check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300_000)
    parser.add_argument(
        "--figures", default=",".join(FIGURES), help=f"which, of {','.join(FIGURES)}"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=0.0,
        help="keep the daemon of `rss` running this long, and report its RSS slope",
    )
    parser.add_argument(
        "--warm-minutes",
        type=float,
        default=None,
        help="the soak's warm-up, left out of the slope (default: its first third)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="CHECKOUT",
        help="first run the same figures with the code of this checkout (git archive main)",
    )
    args = parser.parse_args()
    if run_again_with_glibc_objects is not None:  # the daemon's allocator (the doc above)
        run_again_with_glibc_objects(sys.argv[1:])
    configure_logging("WARNING")  # stdout carries the JSON lines alone; warnings go to stderr
    if args.baseline is not None:
        run_baseline(args)
    try:
        asyncio.run(main(args))
    except asyncio.CancelledError:
        sys.exit("edge_store: stopped (SIGTERM); the daemon and the meters it read are stopped")
