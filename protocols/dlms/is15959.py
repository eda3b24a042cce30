"""IS 15959 (the Indian companion specification of DLMS/COSEM): the objects GridGate reads by
their logical names, and the event codes of the meter's event logs.

One home for these identities: the simulated meter builds its objects from them and the reader
reads by them. Profiles are profile generic objects (interface class 7):

    1-0:94.91.0*255   instantaneous profile: one entry, captured when read
    1-0:99.1.0*255    block load profile: one entry per capture period (attribute 4, 900 s),
                      energy of the block (D = 29) and block averages (D = 27)
    1-0:99.2.0*255    daily load profile: the cumulative energy registers at midnight
    1-0:98.1.0*255    billing profile: one entry per billing date (midnight on the 1st)
    0-0:94.91.10*255  name plate details: serial, manufacturer, firmware, type, category,
                      current rating, year of manufacture
    0-0:99.98.0*255 … 0-0:99.98.6*255   event logs: voltage, current, power failure, transaction,
                      other (tamper), non-rollover, control; each entry starts with the time and
                      the event code (0-0:96.11.x*255 holds the last code of log x)

Event codes are those of the standard's event tables: an occurrence and its restoration are a
pair of codes (1 and 2: R-phase voltage missing, occurred and restored); a non-rollover event
(cover open, 251) has no restoration. `group` names what a pair is about; the gateway turns it
into an event kind (`meter_<group>`). A code not in this table is read as it is and becomes
`meter_event`: among those public head-end code has are 21/22 (phase sequence reverse), 69/70
(earth loading, IS 15959 part 2), 83/84 (high neutral current), 207/208 (neutral missing).

Checked against public implementations (head-end and meter-simulator code of Indian
utilities and vendors, and Gurux's IS 15959 server objects), not against the standard's text
itself: the profiles' and event logs' logical names, the event code objects 0-0:96.11.0..6,
the name plate objects, the counters and every event code here agree with them. Two of them
keep the billing date 0-0:0.1.2*255 in a register (class 3) where the simulated meter has a
data object (class 1): left as it is until the standard's own table can be read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


def ln(text: str) -> bytes:
    """A logical name from its 'A.B.C.D.E.F' text."""
    parts = [int(part) for part in text.split(".")]
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"{text!r} is not a logical name A.B.C.D.E.F")
    return bytes(parts)


INSTANTANEOUS_PROFILE = ln("1.0.94.91.0.255")
BLOCK_LOAD_PROFILE = ln("1.0.99.1.0.255")
DAILY_LOAD_PROFILE = ln("1.0.99.2.0.255")
BILLING_PROFILE = ln("1.0.98.1.0.255")
NAME_PLATE_PROFILE = ln("0.0.94.91.10.255")
ASSOCIATION_LN = ln("0.0.40.0.0.255")  # the current association (class 15)

BLOCK_PERIOD_S = 900
DAILY_PERIOD_S = 86400

# name plate details (class 1): what each holds
SERIAL_NUMBER = ln("0.0.96.1.0.255")
MANUFACTURER = ln("0.0.96.1.1.255")
FIRMWARE_VERSION = ln("1.0.0.2.0.255")
METER_TYPE = ln("0.0.94.91.9.255")
CATEGORY = ln("0.0.94.91.11.255")
CURRENT_RATING = ln("0.0.94.91.12.255")
YEAR_OF_MANUFACTURE = ln("0.0.96.1.4.255")
NAME_PLATE = {
    SERIAL_NUMBER: "serial_number",
    MANUFACTURER: "manufacturer",
    FIRMWARE_VERSION: "firmware_version",
    METER_TYPE: "meter_type",
    CATEGORY: "category",
    CURRENT_RATING: "current_rating",
    YEAR_OF_MANUFACTURE: "year_of_manufacture",
}

# counters and dates (class 1) of the instantaneous and billing profiles
POWER_FAILURES = ln("0.0.96.7.0.255")  # number of power failures
TAMPER_COUNT = ln("0.0.94.91.0.255")  # cumulative tamper count
BILLING_COUNT = ln("0.0.0.1.0.255")  # cumulative billing count
PROGRAMMING_COUNT = ln("0.0.96.2.0.255")  # cumulative programming count
BILLING_DATE = ln("0.0.0.1.2.255")  # the date-time of the last billing


class Log(StrEnum):
    VOLTAGE = "voltage"
    CURRENT = "current"
    POWER = "power_failure"
    TRANSACTION = "transaction"
    OTHER = "other"
    NON_ROLLOVER = "non_rollover"
    CONTROL = "control"


EVENT_LOGS: dict[Log, bytes] = {log: ln(f"0.0.99.98.{i}.255") for i, log in enumerate(Log)}
EVENT_CODE_OBJECTS: dict[Log, bytes] = {log: ln(f"0.0.96.11.{i}.255") for i, log in enumerate(Log)}
LOG_OF: dict[bytes, Log] = {name: log for log, name in EVENT_LOGS.items()}
# entries each log keeps (the oldest go first; the non-rollover log keeps its first entry)
LOG_DEPTH = {
    Log.VOLTAGE: 100,
    Log.CURRENT: 100,
    Log.POWER: 100,
    Log.TRANSACTION: 50,
    Log.OTHER: 50,
    Log.NON_ROLLOVER: 1,
    Log.CONTROL: 50,
}


class Phase(StrEnum):
    OCCURRED = "occurred"
    RESTORED = "restored"
    ONCE = "once"  # a one-off (a setting changed, the cover opened): nothing to restore


@dataclass(frozen=True)
class EventCode:
    code: int
    log: Log
    group: str  # what a pair of codes is about: the gateway's event kind is meter_<group>
    phase: Phase
    text: str


def _pair(code: int, log: Log, group: str, text: str) -> list[EventCode]:
    return [
        EventCode(code, log, group, Phase.OCCURRED, f"{text} - occurrence"),
        EventCode(code + 1, log, group, Phase.RESTORED, f"{text} - restoration"),
    ]


_V, _C, _P, _T, _O, _N, _X = Log
EVENT_CODES: dict[int, EventCode] = {
    e.code: e
    for e in [
        *_pair(1, _V, "voltage_missing", "R-phase voltage missing"),
        *_pair(3, _V, "voltage_missing", "Y-phase voltage missing"),
        *_pair(5, _V, "voltage_missing", "B-phase voltage missing"),
        *_pair(7, _V, "over_voltage", "Over voltage in any phase"),
        *_pair(9, _V, "low_voltage", "Low voltage in any phase"),
        *_pair(11, _V, "voltage_unbalance", "Voltage unbalance"),
        *_pair(51, _C, "current_reverse", "R-phase current reverse"),
        *_pair(53, _C, "current_reverse", "Y-phase current reverse"),
        *_pair(55, _C, "current_reverse", "B-phase current reverse"),
        *_pair(57, _C, "current_open", "R-phase CT open"),
        *_pair(59, _C, "current_open", "Y-phase CT open"),
        *_pair(61, _C, "current_open", "B-phase CT open"),
        *_pair(63, _C, "current_unbalance", "Current unbalance"),
        *_pair(65, _C, "current_bypass", "Current bypass"),
        *_pair(67, _C, "over_current", "Over current in any phase"),
        *_pair(101, _P, "power_failure", "Power failure"),
        EventCode(151, _T, "programmed", Phase.ONCE, "Real time clock - date and time"),
        EventCode(152, _T, "programmed", Phase.ONCE, "Demand integration period"),
        EventCode(153, _T, "programmed", Phase.ONCE, "Profile capture period"),
        EventCode(154, _T, "programmed", Phase.ONCE, "Single-action schedule for billing dates"),
        EventCode(155, _T, "programmed", Phase.ONCE, "Activity calendar for time zones"),
        *_pair(201, _O, "magnet", "Influence of permanent magnet or AC/DC electromagnet"),
        *_pair(203, _O, "neutral_disturbance", "Neutral disturbance - HF and DC"),
        *_pair(205, _O, "low_power_factor", "Very low power factor"),
        EventCode(251, _N, "cover_open", Phase.ONCE, "Cover open"),
        EventCode(301, _X, "load_switch", Phase.ONCE, "Load switch disconnected"),
        EventCode(302, _X, "load_switch", Phase.ONCE, "Load switch connected"),
    ]
}
