"""Register profiles: one TOML data file per meter model, validated on load.

A profile says, for one model, which registers hold which OBIS quantity, how to decode them, how
the model wants to be read (request size limit, how many unused registers a request may span,
ranges it must never be asked for) and how to recognise it (an identification register whose
value is known, and where its serial number lives). The simulators encode with the same file
the readers decode with. Adding a model means adding a file here, not code.
"""

from __future__ import annotations

import itertools
import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared import QUANTITIES

from ..errors import ProfileError
from .codec import REGISTER_COUNT, DataType, WordOrder

RegisterType = Literal["input", "holding"]
PollClass = Literal["fast", "slow"]
Address = Annotated[int, Field(ge=0, le=0xFFFF)]
MAX_REGISTERS_PER_REQUEST = 125  # the Modbus limit for function codes 3 and 4


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegisterSpec(_Strict):
    """One quantity's register group: `value = raw * scale`, in the quantity's unit."""

    quantity: str
    register_type: RegisterType
    address: Address
    data_type: DataType
    word_order: WordOrder = "big"
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 1.0
    poll_class: PollClass | None = None

    @property
    def count(self) -> int:
        return REGISTER_COUNT[self.data_type]

    @property
    def end(self) -> int:
        """One past the last register of this group."""
        return self.address + self.count

    @model_validator(mode="after")
    def _check(self) -> RegisterSpec:
        quantity = QUANTITIES.get(self.quantity)
        if quantity is None:
            raise ValueError(f"unknown quantity {self.quantity!r}")
        if self.end > 0x10000:
            raise ValueError(f"register group at {self.address} runs past address 65535")
        if self.poll_class is None:
            default = "slow" if quantity.changes_slowly else "fast"
            object.__setattr__(self, "poll_class", default)
        return self


class IdentifySpec(_Strict):
    """A register whose value tells this model apart from the others."""

    register_type: RegisterType
    address: Address
    data_type: Literal["u16", "u32", "ascii"]
    count: Annotated[int, Field(ge=1, le=32)] = 1
    expect: int | str  # the value (u16/u32) or the text prefix (ascii) this model reports
    typical: str | None = None  # ascii: what one such meter reports in full, e.g. "iEM3155"

    @property
    def register_count(self) -> int:
        return self.count if self.data_type == "ascii" else REGISTER_COUNT[self.data_type]

    def matches(self, value: int | str) -> bool:
        if self.data_type == "ascii":
            return isinstance(value, str) and value.startswith(str(self.expect))
        return value == self.expect

    @model_validator(mode="after")
    def _check(self) -> IdentifySpec:
        if (self.data_type == "ascii") != isinstance(self.expect, str):
            raise ValueError("expect must be text for ascii and a number otherwise")
        if self.typical is not None and not self.matches(self.typical):
            raise ValueError(f"typical {self.typical!r} does not start with {self.expect!r}")
        return self


class SerialSpec(_Strict):
    """Where the meter keeps its serial number."""

    register_type: RegisterType
    address: Address
    data_type: Literal["u32", "ascii"]
    count: Annotated[int, Field(ge=1, le=32)] = 2

    @property
    def register_count(self) -> int:
        return self.count if self.data_type == "ascii" else REGISTER_COUNT[self.data_type]


class ForbiddenRange(_Strict):
    """Registers the model answers with an exception (or worse); never read, not even as fill."""

    register_type: RegisterType
    start: Address
    end: Address  # inclusive

    @model_validator(mode="after")
    def _check(self) -> ForbiddenRange:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class ModbusProfile(_Strict):
    model: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    vendor: str
    description: str
    phases: Literal[1, 3]
    max_registers_per_request: Annotated[int, Field(ge=1, le=MAX_REGISTERS_PER_REQUEST)] = 125
    max_gap_registers: Annotated[int, Field(ge=0, le=MAX_REGISTERS_PER_REQUEST)] = 8
    identify: IdentifySpec
    serial: SerialSpec
    forbidden: list[ForbiddenRange] = Field(default_factory=list)
    registers: Annotated[list[RegisterSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _check(self) -> ModbusProfile:
        seen: dict[str, int] = {}
        for index, spec in enumerate(self.registers):
            if spec.quantity in seen:
                raise ValueError(
                    f"registers.{index}: quantity {spec.quantity} is already mapped by "
                    f"registers.{seen[spec.quantity]}"
                )
            seen[spec.quantity] = index
            if spec.count > self.max_registers_per_request:
                raise ValueError(f"registers.{index}: larger than max_registers_per_request")
            if self.is_forbidden(spec.register_type, spec.address, spec.end - 1):
                raise ValueError(f"registers.{index}: inside a forbidden range")
        by_type = sorted(self.registers, key=lambda s: (s.register_type, s.address))
        for before, after in itertools.pairwise(by_type):
            if before.register_type == after.register_type and after.address < before.end:
                raise ValueError(
                    f"registers for {before.quantity} and {after.quantity} overlap at "
                    f"{after.register_type} register {after.address}"
                )
        return self

    def is_forbidden(self, register_type: str, first: int, last: int) -> bool:
        """Whether any register in [first, last] of this type lies in a forbidden range."""
        return any(
            r.register_type == register_type and r.start <= last and first <= r.end
            for r in self.forbidden
        )

    def register_for(self, quantity: str) -> RegisterSpec:
        for spec in self.registers:
            if spec.quantity == quantity:
                return spec
        raise KeyError(f"profile {self.model} has no register for quantity {quantity}")


_DEFAULTED_FIELDS = ("register_type", "data_type", "word_order", "scale")


def parse_profile(text: str, source: str) -> ModbusProfile:
    """Parse and validate a profile's TOML text; `source` names it in every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from exc
    defaults = data.pop("defaults", {})
    if not isinstance(defaults, dict) or set(defaults) - set(_DEFAULTED_FIELDS):
        raise ProfileError(f"{source}: [defaults] may only set {', '.join(_DEFAULTED_FIELDS)}")
    registers = data.get("registers")
    if isinstance(registers, list):
        data["registers"] = [
            {**defaults, **entry} if isinstance(entry, dict) else entry for entry in registers
        ]
    try:
        return ModbusProfile.model_validate(data)
    except ValidationError as exc:
        from shared import describe_validation_error  # the contract's codec: only on an error

        problems = "; ".join(f"{path}: {msg}" for path, msg in describe_validation_error(exc))
        raise ProfileError(f"{source}: {problems}") from exc


def load_profile_file(path: Path) -> ModbusProfile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror}") from exc
    return parse_profile(text, str(path))


@cache
def builtin_profiles() -> dict[str, ModbusProfile]:
    """Every profile shipped in `protocols/modbus/profiles/`, by model name."""
    profiles: dict[str, ModbusProfile] = {}
    for entry in resources.files(__package__).joinpath("profiles").iterdir():
        if entry.name.endswith(".toml"):
            profile = parse_profile(entry.read_text(), f"profiles/{entry.name}")
            if profile.model != entry.name.removesuffix(".toml"):
                raise ProfileError(
                    f"profiles/{entry.name}: model {profile.model!r} must match the file name"
                )
            profiles[profile.model] = profile
    return profiles


def get_profile(model: str) -> ModbusProfile:
    """A shipped profile by model name; the error lists the known models."""
    profiles = builtin_profiles()
    try:
        return profiles[model]
    except KeyError:
        raise ProfileError(
            f"unknown meter model {model!r}; known models: {', '.join(sorted(profiles))}"
        ) from None
