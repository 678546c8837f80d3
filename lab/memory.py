"""Is the bit held? A held-out linear read-out of the remembered bit from the hidden state, step by step.

At each step t within the episode the states x_{e,t} of the recent episodes e (the RTU's [Re h, Im h]; the GRU's h)
are split by the bit each asks to remember. Episode e is read out along the difference of the two classes' means
over the *other* episodes (leave-one-out, so a memory that holds nothing scores chance, however many units it has):

    w = m₁ − m₀,   p_{e,t} = (x_{e,t} − (m₁ + m₀)/2) · w / ‖w‖     (m_b: mean of x_{·,t} with bit b, e left out)

p > 0 reads "bit 1". The read-out accuracy (fraction of episodes read right) and d′ = (p̄₁ − p̄₀) / s_pooled are
reported at the last step that enough episodes reach (on MemoryChain: the query). A step at which every episode is
in the same state (the memory already reset at the episode's end) holds nothing to read and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_PER_BIT = 2  # episodes of each bit needed at a step before it is read out


@dataclass(frozen=True)
class Readout:
    """The held-out projections of a window of states, and how well they tell the bits apart."""

    episode: np.ndarray  # (rows,) episode index of each read-out state
    time: np.ndarray  # (rows,) its step within the episode
    bit: np.ndarray  # (rows,) the bit it asks to remember (0 or 1)
    projection: np.ndarray  # (rows,) p: > 0 reads bit 1
    query_time: int  # the step the summary numbers are taken at (-1: no step had enough episodes)
    accuracy: float  # fraction of episodes read right at query_time (NaN where none)
    d_prime: float  # separation of the two bits' projections at query_time (NaN where none)
    episodes: int  # episodes read out at query_time


def features(hidden: np.ndarray) -> np.ndarray:
    """Real features of the hidden states (rows, n): the RTU's complex h as [Re h, Im h]."""
    return np.concatenate([hidden.real, hidden.imag], axis=1) if np.iscomplexobj(hidden) else hidden


def read_out(hidden: np.ndarray, episode_time: np.ndarray, cue: np.ndarray) -> Readout:
    """The leave-one-out read-out of ``cue`` from ``hidden`` (rows in time order; a row with ``episode_time`` 0
    starts an episode; rows before the first start are dropped)."""
    x, t, cue = features(np.asarray(hidden)), np.asarray(episode_time), np.asarray(cue, dtype=float)
    episode = np.cumsum(t == 0) - 1
    keep = (episode >= 0) & np.isfinite(cue)
    if x.shape[1] == 0:  # no memory (the FFN): nothing to read
        keep &= False
    x, t, cue, episode = x[keep], t[keep], cue[keep].astype(int), episode[keep]
    projection = np.full(len(t), np.nan)
    for step in np.unique(t):
        rows = np.flatnonzero(t == step)
        bits = cue[rows]
        counts = np.array([(bits == 0).sum(), (bits == 1).sum()])
        if counts.min() < MIN_PER_BIT or not np.ptp(x[rows], axis=0).any():
            continue  # too few episodes of a bit, or every episode in the same state (after the episode's end)
        sums = np.stack([x[rows[bits == b]].sum(0) for b in (0, 1)])
        for row, b in zip(rows, bits):
            left = sums.copy()
            left[b] -= x[row]
            n = counts.copy()
            n[b] -= 1
            means = left / n[:, None]
            w = means[1] - means[0]
            norm = np.linalg.norm(w)
            projection[row] = 0.0 if norm == 0 else (x[row] - means.mean(0)) @ w / norm
    read = np.isfinite(projection)
    episode, t, cue, projection = episode[read], t[read], cue[read], projection[read]
    if not read.any():
        return Readout(episode, t, cue, projection, -1, np.nan, np.nan, 0)
    query = int(t.max())
    at = t == query
    p, b = projection[at], cue[at]
    accuracy = float(np.mean((p > 0) == (b == 1)))
    spread = np.sqrt(0.5 * (p[b == 1].var() + p[b == 0].var()))
    difference = p[b == 1].mean() - p[b == 0].mean()
    d_prime = float(difference / spread) if spread > 0 else (np.inf if difference > 0 else 0.0)
    return Readout(episode, t, cue, projection, query, accuracy, d_prime, int(at.sum()))
