"""The reproduction scripts' own bookkeeping: what a re-run of the MemoryChain sweep trains again."""

import dataclasses

from benchmarks.memory_chain import finished, population, populations, write_results
from benchmarks.throughput import step_breakdown
from rtu_core import TrainConfig
from rtu_core.agents import QRC
from rtu_core.sweep import run_population
from rtu_core.training import Run


def test_memory_chain_sweep_skips_finished_members_and_deals_the_rest(tmp_path):
    """Finished members are skipped one by one (a longer list of chain lengths adds only the new chains), a member
    left by another setting is trained again, and the rest are dealt into one population per worker."""
    base = TrainConfig(agent="qrc", steps=60, hidden_size=4, width=4, eval_episodes=2)
    members = [dataclasses.replace(base, chain_length=L, seed=s) for L in (2, 3) for s in (0, 1)]
    write_results(tmp_path, run_population(population("rtu-rtrl", members[:2], tmp_path, 0)))  # L = 2, both seeds
    assert [finished(tmp_path, "rtu-rtrl", m) for m in members] == [True, True, False, False]
    assert not finished(tmp_path, "rtu-rtrl", dataclasses.replace(members[0], steps=80))  # another budget
    assert not finished(tmp_path, "gru-tbptt", members[0])
    assert populations("rtu-rtrl", members, tmp_path, 2) == [[members[2]], [members[3]]]
    assert populations("rtu-rtrl", members, tmp_path, 1) == [members[2:]]
    more = members + [dataclasses.replace(base, chain_length=4, seed=s) for s in (0, 1)]
    # dealt from the whole list (member i into population i mod 2), so a re-run forms the same populations
    assert populations("rtu-rtrl", more, tmp_path, 2) == [[more[2], more[4]], [more[3], more[5]]]


def test_throughput_step_breakdown_times_every_part_and_restores_them():
    """The parts of a train() step are each timed (positive), and the methods it wrapped are the originals again."""
    act, observe = QRC.act, Run.observe
    config = TrainConfig(agent="qrc", chain_length=4, hidden_size=4, width=4, steps=200, eval_episodes=0)
    parts = step_breakdown(config)
    assert set(parts) == {
        "act",
        "learn",
        "environment",
        "observation normaliser",
        "reward scaler",
        "actions to the environment",
        "rest",
    }
    assert all(us > 0 for us in parts.values()), parts
    assert QRC.act is act and Run.observe is observe
