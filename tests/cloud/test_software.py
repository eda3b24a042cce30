"""The pure parts of software updates: a wheel's version, and who is in a staged rollout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.errors import InvalidInput
from cloud.services.software import rollout_cohort, version_of_wheel

codes = st.lists(st.from_regex(r"gw-[a-z0-9]{1,8}", fullmatch=True), unique=True, max_size=60)


def test_the_version_comes_from_the_wheel_name() -> None:
    assert version_of_wheel("gridgate-0.2.0-py3-none-any.whl") == "0.2.0"
    assert version_of_wheel("gridgate-1.0.0rc1+pi-py3-none-any.whl") == "1.0.0rc1+pi"
    for bad in ("other-1.0-py3-none-any.whl", "gridgate-1.0.tar.gz", "gridgate-;x-a-b-c.whl"):
        with pytest.raises(InvalidInput):
            version_of_wheel(bad)


@given(codes, st.integers(1, 100), st.integers(1, 100))
def test_a_rollout_takes_the_first_share_and_only_grows(codes, low, high) -> None:
    low, high = sorted((low, high))
    few = rollout_cohort(codes, "1.2.0", low)
    many = rollout_cohort(codes, "1.2.0", high)
    assert few <= many  # raising the share keeps those that have it
    assert len(few) == -(-len(codes) * low // 100)  # the first ceil(n * p / 100)
    assert rollout_cohort(list(reversed(codes)), "1.2.0", low) == few  # order of asking: none
    assert rollout_cohort(codes, "1.2.0", 100) == set(codes)


def test_another_release_starts_with_other_gateways() -> None:
    codes = [f"gw-{i}" for i in range(200)]
    assert rollout_cohort(codes, "1.2.0", 10) != rollout_cohort(codes, "1.3.0", 10)
    assert len(rollout_cohort(codes, "1.2.0", 10)) == 20
