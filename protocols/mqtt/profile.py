"""MQTT payload profiles: which topics a device uses and where each quantity sits in its JSON.

One TOML file per payload family in `protocols/mqtt/profiles/`, validated on load.
"""

from __future__ import annotations

import math
import tomllib
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared import QUANTITIES, describe_validation_error

from ..errors import FrameError, ProfileError


class FieldMap(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")]
    quantity: str
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0

    @field_validator("quantity")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in QUANTITIES:
            raise ValueError(f"unknown quantity {value!r}")
        return value


class MqttProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    profile: str
    description: str
    sensor_topic: Annotated[str, Field(pattern=r"^[^#+]*\{device\}[^#+]*$")]
    status_topic: Annotated[str, Field(pattern=r"^[^#+]*\{device\}[^#+]*$")]
    online: str
    offline: str
    time_path: str | None = None
    naive_time_zone: str = "UTC"
    fields: Annotated[list[FieldMap], Field(min_length=1)]

    @field_validator("naive_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    def topics(self, prefix: str) -> tuple[str, str]:
        """Subscription filters for every device's sensor and status topics."""
        return (
            prefix + self.sensor_topic.replace("{device}", "+"),
            prefix + self.status_topic.replace("{device}", "+"),
        )

    def device_of(self, topic: str, prefix: str) -> tuple[str, str] | None:
        """(device, "sensor"|"status") for a topic of this profile, else None."""
        if not topic.startswith(prefix):
            return None
        rest = topic[len(prefix) :]
        for kind, pattern in (("sensor", self.sensor_topic), ("status", self.status_topic)):
            head, _, tail = pattern.partition("{device}")
            if rest.startswith(head) and rest.endswith(tail) and len(rest) > len(head + tail):
                device = rest[len(head) : len(rest) - len(tail)]
                if "/" not in device:
                    return device, kind
        return None

    def extract(self, payload: Any, received: datetime) -> tuple[datetime, dict[str, float]]:
        """(timestamp, quantity -> value) from a decoded JSON payload; FrameError if unusable."""
        if not isinstance(payload, dict):
            raise FrameError("payload is not a JSON object")
        ts = received
        if self.time_path:
            raw_time = _lookup(payload, self.time_path)
            if isinstance(raw_time, str):
                try:
                    ts = datetime.fromisoformat(raw_time)
                except ValueError as exc:
                    raise FrameError(f"{self.time_path}: {raw_time!r} is not a time") from exc
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=ZoneInfo(self.naive_time_zone))
                ts = ts.astimezone(UTC)
        values = {}
        for field in self.fields:
            raw = _lookup(payload, field.path)
            if raw is None:
                continue
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                raise FrameError(f"{field.path}: {raw!r} is not a number")
            value = float(raw) * field.scale
            if not math.isfinite(value):
                raise FrameError(f"{field.path}: not a finite number")
            values[field.quantity] = value
        if not values:
            raise FrameError("payload holds none of the profile's fields")
        return ts, values


def _lookup(payload: dict[str, Any], path: str) -> Any:
    node: Any = payload
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def parse_mqtt_profile(text: str, source: str) -> MqttProfile:
    try:
        return MqttProfile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{path}: {msg}" for path, msg in describe_validation_error(exc))
        raise ProfileError(f"{source}: {problems}") from exc


@cache
def get_mqtt_profile(name: str) -> MqttProfile:
    entry = resources.files(__package__).joinpath("profiles", f"{name}.toml")
    if not entry.is_file():
        raise ProfileError(f"unknown MQTT profile {name!r}")
    return parse_mqtt_profile(entry.read_text(), f"mqtt/profiles/{name}.toml")
