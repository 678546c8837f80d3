import numpy as np

from rtu_core.normalize import ObservationNormalizer, RewardScaler


def test_observation_normalizer_is_per_member_welford():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 2, 3)) * np.array([[1.0], [10.0]]) + 5
    norm = ObservationNormalizer(2, 3)
    for x in data:
        out = norm(x)
    for i in range(2):
        mean, std = data[:, i].mean(0), data[:, i].std(0, ddof=1)
        assert np.allclose(out[i], (data[-1, i] - mean) / np.sqrt(std**2 + 1e-8))


def test_observation_normalizer_mask_and_freeze():
    norm = ObservationNormalizer(2, 1)
    norm(np.array([[1.0], [1.0]]))
    norm(np.array([[3.0], [9.0]]), mask=np.array([True, False]))
    assert norm.stats.count.tolist() == [2, 1]
    norm.frozen = True
    before = norm.stats.mean.copy()
    norm(np.array([[100.0], [100.0]]))
    assert np.array_equal(norm.stats.mean, before)


def test_reward_scaler_divides_by_std_of_discounted_return_and_resets():
    scaler = RewardScaler(1, gamma=0.5)
    rewards, dones = [1.0, 1.0, 0.0, 2.0], [False, True, False, False]
    returns, g = [], 0.0
    for r, d in zip(rewards, dones):
        g = 0.5 * g + r
        returns.append(g)
        out = scaler(np.array([r]), np.array([d]))
        if d:
            g = 0.0
    assert returns == [1.0, 1.5, 0.0, 2.0]
    assert out.item() == np.float64(2.0) / np.sqrt(np.var(returns, ddof=1) + 1e-8)


def test_lanes_share_their_members_statistics_and_clip():
    """PPO's continuous-control normalisation: the lanes of one member update one set of statistics (in lane
    order), results are clipped to ±10, and frozen statistics normalise any number of rows per member."""
    rng = np.random.default_rng(0)
    norm, seen = ObservationNormalizer(1, 3, lanes=2, clip=10.0), []
    for _ in range(20):
        obs = rng.normal(size=(2, 3)) * 5 + 2
        seen.append(obs)
        out = norm(obs)
    seen = np.concatenate(seen)
    expected = (obs - seen.mean(0)) / np.sqrt(seen.var(0, ddof=1) + 1e-8)
    assert np.allclose(out, expected.clip(-10, 10))
    norm.frozen = True
    assert norm(np.full((1, 3), 1e6)).max() == 10.0  # one evaluation row, clipped, statistics untouched
    assert np.allclose(norm.stats.mean[0], seen.mean(0))
    scaler = RewardScaler(1, gamma=0.9, lanes=2, clip=10.0)
    rewards = [np.array([1.0, -2.0]), np.array([3.0, 0.5]), np.array([0.0, 1.0])]
    dones = [np.array([False, True]), np.array([False, False]), np.array([True, False])]
    g, returns = np.zeros(2), []
    for r, d in zip(rewards, dones):
        g = 0.9 * g + r
        returns += list(g)
        scaled = scaler(r, d)
        g[d] = 0.0
    assert np.allclose(scaled, rewards[-1] / np.sqrt(np.var(returns, ddof=1) + 1e-8))
