"""What the gateway is doing, read from its store (works while the daemon runs: SQLite WAL
readers never block the writer)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .store import from_us


def read_status(store_path: Path) -> dict[str, Any]:
    """Buses, meters (last good read, errors), open alerts, backlog and last sync."""
    if not store_path.exists():
        raise FileNotFoundError(f"no store at {store_path}: has the daemon run yet?")
    conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        state = {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM state")}
        acked_readings = int(meta.get("acked_readings_seq", 0))
        acked_events = int(meta.get("acked_events_seq", 0))
        unsent, oldest = conn.execute(
            "SELECT count(*), min(ts_us) FROM readings WHERE seq > ?", (acked_readings,)
        ).fetchone()
        unsent_events = conn.execute(
            "SELECT count(*) FROM events WHERE seq > ?", (acked_events,)
        ).fetchone()[0]
        stored = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        conn.close()
    alerts = []
    for key, value in state.items():
        if key.startswith("check:"):
            for kind, quantity in value.get("open", {}).items():
                alerts.append({"meter_id": key[6:], "kind": kind, "quantity": quantity or None})
    if state.get("clock:unsynced_open"):
        alerts.append({"meter_id": None, "kind": "clock_unsynced", "quantity": None})
    daemon = state.get("daemon") or {}
    return {
        "store": str(store_path),
        "daemon": daemon,
        "buses": {k[4:]: v for k, v in state.items() if k.startswith("bus:")},
        "meters": {k[6:]: v for k, v in state.items() if k.startswith("meter:")},
        "alerts": sorted(alerts, key=lambda a: (a["meter_id"] or "", a["kind"])),
        "backlog": {
            "readings": unsent,
            "events": unsent_events,
            "oldest_unsent": from_us(oldest).isoformat() if oldest is not None else None,
            "stored_readings": stored,
        },
        "sync": {
            "last_sync_at": meta.get("last_sync_at"),
            "last_error": meta.get("last_sync_error"),
            "last_error_at": meta.get("last_sync_error_at"),
        },
        "read_at": datetime.now(UTC).isoformat(),
    }
