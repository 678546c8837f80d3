"""The lab's memory view (``lab.memory``): the held-out read-out of the remembered bit from the hidden state is
high once an agent solves MemoryChain, at chance for a state that holds nothing, and the plot draws it."""

import numpy as np
import pytest

from lab.memory import read_out
from lab.plots import MemoryPlot
from rtu_core import Snapshot, TrainConfig, train


def episodes(rng, count=40, length=9, size=16):
    t = np.tile(np.arange(length), count)
    bits = np.repeat(rng.integers(0, 2, count), length).astype(float)
    return rng.normal(size=(count * length, size)), t, bits


def test_noise_reads_at_chance_and_a_held_bit_reads_right():
    """Leave-one-out keeps noise at chance whatever its width (averaged over 100 windows), and a unit holding the
    bit is read right every time."""
    rng = np.random.default_rng(0)
    accuracies = [read_out(*episodes(rng, size=64)).accuracy for _ in range(100)]
    assert 0.45 < np.mean(accuracies) < 0.55
    x, t, bits = episodes(rng)
    x[:, 3] += 2.0 * (2 * bits - 1) * (t > 0)  # held from step 1 on
    readout = read_out(x, t, bits)
    assert readout.query_time == 8 and readout.accuracy >= 0.95 and readout.d_prime > 3
    at_zero = readout.projection[readout.time == 0]
    assert abs(np.mean(at_zero[readout.bit[readout.time == 0] == 1]) - np.mean(at_zero)) < 1.0  # not yet shown


def test_a_partial_first_episode_and_a_stateless_network():
    rng = np.random.default_rng(1)
    x, t, bits = episodes(rng)
    readout = read_out(x[4:], t[4:], bits[4:])  # the window starts mid-episode: that episode is dropped
    assert readout.episodes == 39
    ffn = read_out(np.zeros((len(t), 0)), t, bits)
    assert ffn.query_time == -1 and np.isnan(ffn.accuracy)


@pytest.mark.slow
def test_after_solving_memory_chain_the_bit_reads_out_and_shuffled_bits_do_not():
    """Stream AC(λ) with the RTU and RTRL solves MemoryChain L = 8 (the classroom demo's settings): its hidden state
    at the query tells the bits apart in held-out episodes; the same states with the bits shuffled read at chance."""
    config = TrainConfig(
        chain_length=8, hidden_size=32, width=32, steps=20_000, eval_episodes=0, snapshot_every=20_000,
        snapshot_window=360, progress_every=20_000,
    )  # fmt: skip
    snapshot = [e for e in train(config) if isinstance(e, Snapshot)][-1]
    readout = read_out(snapshot.hidden["actor"], snapshot.episode_time, snapshot.cue)
    assert readout.query_time == 7 and readout.episodes >= 30  # bsuite timing: the query is step L - 1
    assert readout.accuracy >= 0.9 and readout.d_prime > 2, readout
    rng = np.random.default_rng(0)
    starts = np.flatnonzero(snapshot.episode_time == 0)
    shuffled = np.repeat(rng.permutation(snapshot.cue[starts]), np.diff(np.append(starts, len(snapshot.cue))))
    control = read_out(snapshot.hidden["actor"][starts[0] :], snapshot.episode_time[starts[0] :], shuffled)
    assert control.accuracy < 0.75, control

    plot = MemoryPlot("actor")
    plot.update(snapshot)
    assert plot.summary[0] == readout.accuracy and "read out at step 7" in plot.title.lower()
    overlay = plot._draw(plot.pipe.data)
    drawn = [len(path.data) for path in overlay if hasattr(path, "data") and isinstance(path.data, list)]
    assert all(n == 1 for n in drawn[:2])  # both bits' lines
