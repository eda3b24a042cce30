"""Read plans: the fewest Modbus requests that cover the registers wanted from one meter.

Registers of one type are merged into one request when the unread registers between them
(the gap) are at most the profile's `max_gap_registers`, the request stays within the profile's
`max_registers_per_request` (never over 125), and no register of the span is forbidden — by the
profile, or because the meter refused it before. Greedy left-to-right merging is minimal under
this rule: feasibility is closed under dropping the first group of a request, so a request that
reaches as far as it can never costs a later one.

`MeterReadPlan` keeps what a meter has taught us: when a merged request is answered "illegal
data address", a barrier is remembered at its widest gap (or its middle), so it is read as two
requests from then on — bisection, so a plan is split only as far as the meter forces. A single
group refused on its own is quarantined.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .profile import ModbusProfile, PollClass, RegisterSpec


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read request: `count` registers of `register_type` from `address`, covering `specs`."""

    register_type: str
    address: int
    count: int
    specs: tuple[RegisterSpec, ...]

    @property
    def end(self) -> int:
        return self.address + self.count

    @property
    def function_code(self) -> int:
        return 4 if self.register_type == "input" else 3

    def describe(self) -> str:
        return (
            f"{self.register_type} registers {self.address}-{self.end - 1} "
            f"({', '.join(s.quantity for s in self.specs)})"
        )


Barrier = tuple[str, int]  # (register type, address): no request may span address-1 and address


def plan_reads(
    profile: ModbusProfile,
    specs: Iterable[RegisterSpec],
    barriers: frozenset[Barrier] = frozenset(),
) -> list[ReadRequest]:
    """Group `specs` into the fewest requests the profile's rules (and `barriers`) allow."""
    limit = profile.max_registers_per_request
    requests: list[ReadRequest] = []
    ordered = sorted(specs, key=lambda s: (s.register_type, s.address))
    current: list[RegisterSpec] = []

    def flush() -> None:
        if current:
            start = current[0].address
            requests.append(
                ReadRequest(
                    current[0].register_type, start, current[-1].end - start, tuple(current)
                )
            )
            current.clear()

    for spec in ordered:
        if current:
            last = current[-1]
            fits = (
                spec.register_type == last.register_type
                and spec.address - last.end <= profile.max_gap_registers
                and spec.end - current[0].address <= limit
                and not profile.is_forbidden(spec.register_type, last.end, spec.address - 1)
                and (spec.register_type, spec.address) not in barriers
            )
            if not fits:
                flush()
        current.append(spec)
    flush()
    return requests


@dataclass
class MeterReadPlan:
    """The working read plan of one meter, learning from the meter's refusals."""

    profile: ModbusProfile
    barriers: set[Barrier] = field(default_factory=set)
    quarantined: set[str] = field(default_factory=set)
    _cache: dict[PollClass | None, list[ReadRequest]] = field(default_factory=dict)

    def requests(self, poll_class: PollClass | None = None) -> list[ReadRequest]:
        """The requests for one poll class (None: every register)."""
        if poll_class not in self._cache:
            wanted = [
                s
                for s in self.profile.registers
                if s.quantity not in self.quarantined
                and (poll_class is None or s.poll_class == poll_class)
            ]
            self._cache[poll_class] = plan_reads(self.profile, wanted, frozenset(self.barriers))
        return self._cache[poll_class]

    def refused(self, request: ReadRequest) -> list[ReadRequest]:
        """The meter answered `request` with "illegal data address": learn, and return the
        requests that replace it (empty when its only group is now quarantined)."""
        self._cache.clear()
        specs = request.specs
        if len(specs) == 1:
            self.quarantined.add(specs[0].quantity)
            return []
        gaps = [
            (specs[i].address - specs[i - 1].end, -abs(2 * i - len(specs)), i)
            for i in range(1, len(specs))
        ]
        _, _, split = max(gaps)  # the widest gap; among equals, the one nearest the middle
        self.barriers.add((request.register_type, specs[split].address))
        return plan_reads(self.profile, specs, frozenset(self.barriers))
