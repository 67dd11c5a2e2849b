from __future__ import annotations

from services.common.budget import budget_for


def test_budget_is_the_default_until_the_seeds_need_more() -> None:
    assert budget_for([10, 40], floor=96) == 96
    assert budget_for([100], floor=96) == 166  # 1.5 x 100 + 16
    assert budget_for([], floor=16) == 16
    assert budget_for([100_000], floor=96, cap=1024) == 1024
    assert budget_for([100_000], floor=2048, cap=1024) == 2048  # an explicit floor wins over the cap
