"""The event table: every kind of event or alert a gateway may report, with its default severity.

Alerts (`raised` ... `cleared`) come from the gateway's local checks; notices are one-shot facts
the cloud should know (the store was reset, the disk budget forced a reduction, ...).
"""

from __future__ import annotations

from enum import StrEnum


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class EventStatus(StrEnum):
    RAISED = "raised"  # an alert opens (deduplicated: one open alert per meter and kind)
    CLEARED = "cleared"  # the condition behind an open alert has ended
    NOTICE = "notice"  # a one-shot fact, nothing to clear


EVENT_KINDS: dict[str, tuple[Severity, str]] = {
    # local checks on readings
    "power_spike": (Severity.MEDIUM, "Power above the EWMA baseline by more than the threshold"),
    "power_drop": (Severity.LOW, "Power below the EWMA baseline by more than the threshold"),
    "outage": (Severity.HIGH, "Power near zero while the baseline says there should be load"),
    "voltage_sag": (Severity.MEDIUM, "Voltage below nominal by more than 10 % (EN 50160)"),
    "voltage_swell": (Severity.MEDIUM, "Voltage above nominal by more than 10 % (EN 50160)"),
    "phase_loss": (Severity.HIGH, "One phase of a three-phase meter has no voltage"),
    "frequency_deviation": (Severity.MEDIUM, "Frequency outside the allowed band"),
    "reverse_flow": (Severity.MEDIUM, "Energy flowing to the grid on a meter without export"),
    "register_backwards": (Severity.HIGH, "A cumulative register went down (tamper/reset)"),
    "register_jump": (Severity.HIGH, "A cumulative register rose faster than max power allows"),
    "register_rollover": (Severity.LOW, "A cumulative register wrapped around its maximum"),
    "stale_value": (Severity.LOW, "A meter keeps returning exactly the same values"),
    "communication_loss": (Severity.HIGH, "A meter stopped answering"),
    # time
    "clock_unsynced": (Severity.MEDIUM, "The gateway clock is not synchronised"),
    "clock_corrected": (Severity.INFO, "Readings taken before clock sync were re-stamped"),
    "meter_clock_drift": (Severity.LOW, "A meter's clock differs from the gateway's"),
    # the gateway itself
    "gateway_started": (Severity.INFO, "The edge daemon started"),
    "store_corrupt": (Severity.HIGH, "The local store failed its integrity check and was reset"),
    "store_write_failed": (
        Severity.HIGH,
        "The local store could not be written (disk full?); readings were held in memory",
    ),
    "disk_budget_pruned": (Severity.INFO, "Acknowledged data pruned to stay within disk budget"),
    "disk_budget_downsampled": (
        Severity.MEDIUM,
        "Unsent instantaneous values downsampled to stay within disk budget",
    ),
    "backfill": (Severity.INFO, "Readings filled from a meter's load profile after a gap"),
    "readings_refused": (
        Severity.HIGH,
        "The cloud refused a meter's readings: the meter is not assigned to this gateway",
    ),
    # what a DLMS meter logged itself (IS 15959 event logs): `meter_<group>` of the code's
    # group (protocols/dlms/is15959.py); occurrence raises, restoration clears, a one-off is a
    # notice. The code, its text and what the meter measured are in the details.
    "meter_power_failure": (Severity.HIGH, "The meter logged a power failure"),
    "meter_voltage_missing": (Severity.HIGH, "The meter logged a phase voltage missing"),
    "meter_over_voltage": (Severity.MEDIUM, "The meter logged over voltage"),
    "meter_low_voltage": (Severity.MEDIUM, "The meter logged low voltage"),
    "meter_voltage_unbalance": (Severity.LOW, "The meter logged voltage unbalance"),
    "meter_current_reverse": (Severity.HIGH, "The meter logged current reversed (tamper?)"),
    "meter_current_open": (Severity.MEDIUM, "The meter logged a phase current open"),
    "meter_current_unbalance": (Severity.LOW, "The meter logged current unbalance"),
    "meter_current_bypass": (Severity.HIGH, "The meter logged current bypass (tamper)"),
    "meter_over_current": (Severity.MEDIUM, "The meter logged over current"),
    "meter_magnet": (Severity.HIGH, "The meter logged a magnet's influence (tamper)"),
    "meter_neutral_disturbance": (Severity.HIGH, "The meter logged neutral disturbance (tamper)"),
    "meter_low_power_factor": (Severity.LOW, "The meter logged a very low power factor"),
    "meter_cover_open": (Severity.HIGH, "The meter logged its cover opened (tamper)"),
    "meter_programmed": (Severity.INFO, "The meter logged a setting changed (its clock, ...)"),
    "meter_load_switch": (Severity.INFO, "The meter logged its load switch operated"),
    "meter_event": (Severity.LOW, "The meter logged an event of a code GridGate does not know"),
}

EVENT_KIND_CODES: tuple[str, ...] = tuple(EVENT_KINDS)
