"""Runs take turns: one holds the lease, the others wait; a dead holder's lease is taken over."""

from __future__ import annotations

import pytest

from lead_scoring.config import WarehouseConfig
from lead_scoring.orchestration.turns import hand_back, take_turn

pytestmark = pytest.mark.integration


def test_one_run_at_a_time_and_a_dead_holder_does_not_block(warehouse: WarehouseConfig) -> None:
    running = {"backfill__a", "backfill__b", "scheduled__c"}

    def alive(run_id: str) -> bool:
        return run_id in running

    assert take_turn(warehouse, "backfill__a", alive) is None  # free: a takes it
    assert take_turn(warehouse, "backfill__a", alive) is None  # a poke again keeps it
    assert take_turn(warehouse, "backfill__b", alive) == "backfill__a"  # b waits
    assert not hand_back(warehouse, "backfill__b")  # only the holder hands it back
    assert hand_back(warehouse, "backfill__a")
    assert take_turn(warehouse, "backfill__b", alive) is None  # b's turn
    running.discard("backfill__b")  # b was killed without handing it back
    assert take_turn(warehouse, "scheduled__c", alive) is None  # c takes the stale lease over
    assert take_turn(warehouse, "backfill__a", alive) == "scheduled__c"
