"""Register profiles: every shipped model loads, and a bad file says where it is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.errors import ProfileError
from protocols.modbus.profile import builtin_profiles, get_profile, load_profile_file, parse_profile

GOOD = """
model = "tiny"
vendor = "Test"
description = "test"
phases = 1
identify = { register_type = "holding", address = 0, data_type = "u16", expect = 1 }
serial = { register_type = "holding", address = 1, data_type = "u32" }
[defaults]
register_type = "input"
data_type = "float32"
[[registers]]
quantity = "32.7.0"
address = 0
[[registers]]
quantity = "1.8.0"
address = 10
"""


def test_every_shipped_model_loads() -> None:
    profiles = builtin_profiles()
    assert set(profiles) == {"sdm630", "sdm120", "em24", "iem3000"}
    for profile in profiles.values():
        assert profile.register_for("1.8.0").poll_class == "slow"
        assert profile.register_for("32.7.0").poll_class == "fast"


def test_identification_values_tell_shipped_models_apart() -> None:
    keys = {
        (p.identify.register_type, p.identify.address, str(p.identify.expect))
        for p in builtin_profiles().values()
    }
    assert len(keys) == len(builtin_profiles())


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="known models: em24, iem3000, sdm120, sdm630"):
        get_profile("sdm72")


def test_defaults_apply_and_a_good_profile_parses() -> None:
    profile = parse_profile(GOOD, "tiny.toml")
    assert profile.register_for("1.8.0").data_type == "float32"
    assert profile.register_for("1.8.0").register_type == "input"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('quantity = "1.8.0"', 'quantity = "1.8.9"'),
            "registers.1: unknown quantity",
        ),
        (('data_type = "float32"', 'data_type = "float16"'), "registers.0.data_type"),
        (("address = 10", "address = 1"), "overlap"),
        (('quantity = "1.8.0"', 'quantity = "32.7.0"'), "already mapped"),
        (("phases = 1", "phases = 2"), "phases"),
        (("address = 10", "address = 70000"), "registers.1.address"),
        (("[defaults]", "[defaults]\npoll = 3"), "[defaults] may only set"),
        (('vendor = "Test"', 'vendor = "Test"\nfirmware = 1'), "firmware: not a setting"),
        (
            (
                "[[registers]]",
                "[[registers]]\nscale = -1",
            ),
            "scale",
        ),
        (('model = "tiny"', "model = [1"), "not valid TOML"),
    ],
)
def test_bad_profiles_name_the_file_and_the_field(change: tuple[str, str], message: str) -> None:
    text = GOOD.replace(*change, 1)
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, "bad.toml")
    assert str(caught.value).startswith("bad.toml: ")
    assert message in str(caught.value)


def test_forbidden_range_may_not_hold_a_register() -> None:
    text = GOOD.replace(
        "phases = 1",
        'phases = 1\nforbidden = [{ register_type = "input", start = 9, end = 11 }]',
    )
    with pytest.raises(ProfileError, match="inside a forbidden range"):
        parse_profile(text, "bad.toml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile_file(tmp_path / "absent.toml")
