"""The sweep-efficiency benchmark's verdicts: a target neither tool reached is no win."""

import math
from types import SimpleNamespace

import pytest
from tests.helpers.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def efficiency():
    return load_benchmark("sweep_efficiency")


def verdict(efficiency, ours: list, theirs: list, target: float, budget: float = 600) -> str:
    args = SimpleNamespace(targets=[target], budget=budget)
    lines = efficiency.ratio_lines({"hyperband": [theirs], "rnnsweep": [ours]}, args)
    return lines[0]


def test_a_target_neither_tool_reached_is_not_met(efficiency):
    line = verdict(efficiency, ours=[(10, 0.80)], theirs=[(10, 0.82)], target=0.90)
    assert "neither reached" in line and "met" not in line


def test_a_target_only_ours_reached_is_bounded_by_the_budget(efficiency):
    line = verdict(efficiency, ours=[(100, 0.91)], theirs=[(10, 0.82)], target=0.90)
    assert "at most 0.17" in line and "(target <= 0.5: met)" in line
    late = verdict(efficiency, ours=[(400, 0.91)], theirs=[(10, 0.82)], target=0.90)
    assert "at most 0.67" in late and "not shown" in late


def test_a_target_only_hyperband_reached_is_not_met(efficiency):
    line = verdict(efficiency, ours=[(10, 0.80)], theirs=[(50, 0.91)], target=0.90)
    assert "NOT met" in line


def test_both_reached_gives_the_ratio(efficiency):
    line = verdict(efficiency, ours=[(20, 0.91)], theirs=[(100, 0.91)], target=0.90)
    assert "0.20 of Hyperband's time" in line and "(target <= 0.5: met)" in line
    assert not math.isinf(efficiency.time_to([(20, 0.91)], 0.90))
