"""Every word a page builds from a name (a permission, a command, a status, a category) is in
the catalog: a person never reads `perm.query:open` or `support.status.closed`."""

from __future__ import annotations

import re

from cloud.access import Permission
from cloud.dashboard.i18n import catalog
from cloud.dashboard.support_pages import CATEGORIES
from cloud.payments import razorpay
from cloud.services import gateway_control, preferences, software, support

WORDS = catalog("en")


def missing(keys: list[str]) -> list[str]:
    return [key for key in keys if key not in WORDS]


def test_every_permission_has_words() -> None:
    assert missing([f"perm.{p.value}" for p in Permission]) == []


def test_every_support_and_command_name_has_words() -> None:
    keys = [f"support.status.{s}" for s in support.STATUSES]
    keys += [f"support.mine.{s}" for s in support.STATUSES]
    keys += [f"support.priority.{p}" for p in support.PRIORITIES]
    keys += [f"support.category.{c}" for c in CATEGORIES]
    keys += [f"command.{k}" for k in (*gateway_control.KINDS, *gateway_control.SUPPLY)]
    statuses = ("queued", "delivered", "succeeded", "failed", "refused", "interrupted")
    keys += [f"command_status.{s}" for s in (*statuses, "expired", "cancelled")]
    keys += [f"preferences.kind.{k}" for k in preferences.OPT_OUTS]
    keys += [f"software.status.{s}" for s in software.STATUSES]
    keys += ["command.update"]  # the cloud's own command, listed on the gateway's page
    assert missing(keys) == []


def test_every_way_a_payment_comes_has_words() -> None:
    assert missing([f"payment_via.{via}" for via in ("office", razorpay.PROVIDER)]) == []


def test_a_count_of_one_reads_in_the_singular() -> None:
    from cloud.dashboard.i18n import translator

    t = translator("en")
    assert t("billing.n_bills", n=1) == "1 bill"
    assert t("billing.n_bills", n=3) == "3 bills"
    assert t("billing.outstanding", amount="₹10.00", n=1).endswith("1 bill disputed.")
    assert t("gateways.bus", n=1, failing=0, transactions=5, timeouts=0, crc=0).startswith(
        "1 meter (0 failing)"
    )
    # each singular names the same values as its plural, less the count it spells out
    for key in [k for k in WORDS if k.endswith("_one") and k.removesuffix("_one") in WORDS]:
        plural = set(re.findall(r"{(\w+)}", WORDS[key.removesuffix("_one")])) - {"n"}
        assert set(re.findall(r"{(\w+)}", WORDS[key])) - {"n"} == plural, key


def test_every_audited_action_and_thing_has_words() -> None:
    """The audit log shows each action and kind of thing in words ('Command sent to the
    gateway', 'tariff override'), never `queue_command` or `tariff_override`: every name the
    code records, read from its source, is in the catalog."""
    from pathlib import Path

    from shared import ConfigState

    source = "\n".join(
        path.read_text() for path in (Path(__file__).parents[2] / "cloud").rglob("*.py")
    )
    actions = set(re.findall(r'\baction\s*=\s*"([a-z_]+)"', source))
    actions |= set(re.findall(r'_audit\(\s*conn,\s*[\w.]+,\s*"([a-z_]+)"', source))
    actions.discard("config_")  # "config_" + the state the gateway reported
    actions |= {f"config_{state.value}" for state in ConfigState}
    entities = set(re.findall(r'\bentity\s*=\s*"([a-z_]+)"', source))
    assert len(actions) > 40  # the scan finds what it looks for
    assert len(entities) > 20
    assert missing(sorted(f"event.{a}" for a in actions)) == []
    assert missing(sorted(f"entity.{e}" for e in entities)) == []


def test_a_gateway_log_line_leaves_out_what_it_does_not_know() -> None:
    from cloud.dashboard.gateway_pages import _log_line

    line = _log_line(
        '{"timestamp": "2026-11-29T00:41:13Z", "level": "warning", "event": "read failed",'
        ' "bus": "rtu-1", "meter": null, "tries": 3}'
    )
    assert (line["level"], line["event"], line["rest"]) == (
        "warning",
        "read failed",
        "bus=rtu-1 tries=3",
    )
