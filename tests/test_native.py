"""The native engine (``rtu_core.engines.native``): its forward pass, RTRL advance and gradients equal autograd
through the network (float64), the Stream AC and QRC agents using it take the eager agents' steps, and a population
member equals its solo run bit for bit."""

import dataclasses

import gymnasium as gym
import pytest
import torch

from rtu_core import TrainConfig, engines
from rtu_core.agents import make_agent
from rtu_core.engines import native
from rtu_core.network import MemoryNetwork
from rtu_core.results import RunRecorder
from rtu_core.rng import MemberRandom
from rtu_core.training import train

from .test_fused import OBS, OUT, P, make_network


def flat_grads(grads) -> torch.Tensor:
    return torch.cat([g.reshape(P, -1) for g in grads], dim=1)


def step_and_compare(net, runner, memory, native_memory, state_tol, grad_tol):
    """One step of the eager network and of its native twin from the same random o_t: out_t, the memory (h, S and,
    with the Taylor correction, C; within ``state_tol`` = (rtol, atol)) and d(g · out_t)/dθ of every parameter by
    autograd (within ``grad_tol``); then one step further without advancing (QRC's ∇Q(o', a*)): the output, the
    unchanged memory and the gradient through the sensitivities one step further. Returns both memories."""
    obs, next_obs = torch.randn(P, OBS, dtype=torch.float64), torch.randn(P, OBS, dtype=torch.float64)
    grad_out = torch.randn(P, OUT, dtype=torch.float64)
    grad = torch.zeros_like(runner.flat)
    out, memory = net.step(obs, memory)
    expected = flat_grads(torch.autograd.grad((grad_out * out).sum(), list(net.parameters())))
    got, native_memory, tape = runner.forward(obs, native_memory, advance=True)
    assert torch.allclose(got, out.detach(), rtol=1e-12, atol=1e-13)
    for a, b in zip(native_memory, memory):
        assert torch.allclose(a, b, rtol=state_tol[0], atol=state_tol[1])
    runner.backward(grad, grad_out, tape, native_memory)
    assert torch.allclose(grad, expected, rtol=grad_tol[0], atol=grad_tol[1])
    next_out, _ = net.step(next_obs, memory)
    expected = flat_grads(torch.autograd.grad((grad_out * next_out).sum(), list(net.parameters())))
    hidden_before = native_memory.hidden.clone()
    got, unchanged, tape = runner.forward(next_obs, native_memory, advance=False)
    assert torch.allclose(got, next_out.detach(), rtol=1e-12, atol=1e-13)
    assert torch.equal(unchanged.hidden, hidden_before)
    runner.backward(grad, grad_out, tape, native_memory, next_step=True)
    assert torch.allclose(grad, expected, rtol=grad_tol[0], atol=grad_tol[1])
    return memory, native_memory


@pytest.mark.parametrize("head_width", [0, 7], ids=["linear-head", "head-block"])
@pytest.mark.parametrize("feature_layers", [1, 2])
@pytest.mark.parametrize("nonlinear", [False, True], ids=["linear", "nonlinear"])
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh", "relu"])
def test_native_network_equals_autograd(nonlinear, activation, feature_layers, head_width):
    """out_t, the RTRL state and d(g · out_t)/dθ for every parameter over 7 steps, and the gradient of the *next*
    output through the sensitivities one step further (QRC's ∇Q(o', a*)); with a linear head or a hidden head
    block (Dense → LayerNorm → activation → linear, the POPGym and MuJoCo presets' head)."""
    net = make_network(nonlinear, activation, feature_layers, head_width)
    twin = make_network(nonlinear, activation, feature_layers, head_width)
    runner = native.NativeNetwork(twin, native.flatten_parameters(list(twin.parameters())))
    memory, native_memory = net.initial_memory(), twin.initial_memory()
    for _ in range(7):
        memory, native_memory = step_and_compare(net, runner, memory, native_memory, (1e-12, 1e-13), (1e-10, 1e-13))


def test_native_network_follows_parameter_changes_made_by_torch():
    """The runner keeps the RTU's coefficients (e^ν, θ, r cos θ, …) between passes and computes them again when the
    parameters change: an in-place change through a parameter (as an optimiser's step makes) or through the flat row
    is seen by the next forward pass, which keeps equal to the eager network's."""
    net, twin = make_network(False, "tanh", 1, 0), make_network(False, "tanh", 1, 0)
    runner = native.NativeNetwork(twin, native.flatten_parameters(list(twin.parameters())))
    obs = torch.randn(P, OBS, dtype=torch.float64)
    for change in (
        lambda n: n.cell.nu_log.add_(0.3),
        lambda n: n.cell.theta_log.mul_(0.5),
        lambda n: runner.flat.add_(0.01) if n is twin else [p.add_(0.01) for p in n.parameters()],
    ):
        with torch.no_grad():
            change(net), change(twin)
        out, _ = net.step(obs, net.initial_memory())
        got, _, _ = runner.forward(obs, twin.initial_memory(), advance=True)
        assert torch.allclose(got, out.detach(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("head_width", [0, 7], ids=["linear-head", "head-block"])
def test_native_taylor_correction_equals_the_eager_forward_mode_derivative(head_width):
    """The linear RTU with the paper's Taylor correction, its parameters moved between steps as updates would move
    them: the native advance gives the same S and C as the eager forward-mode derivative (``torch.func.jvp`` of
    the RTRL step along (Δθ, C)), and the gradients (this step's, and the next one's without advancing) credit
    S + C as autograd through the eager step does; an episode start in between zeroes both."""
    net, twin = (make_network(False, "leaky_relu", head_width=head_width, taylor=True) for _ in range(2))
    runner = native.NativeNetwork(twin, native.flatten_parameters(list(twin.parameters())))
    memory, native_memory = net.initial_memory(), twin.initial_memory()
    corrected = 0.0
    # Δθ is counted from the parameters the network starts with (the native runner's copy at construction)
    net.cell._taylor_previous = tuple(p.detach().clone() for p in net.cell.parameters())
    for t in range(9):
        with torch.no_grad():  # an update's change of every parameter (the same in both networks)
            for p, q in zip(net.parameters(), twin.parameters()):
                change = 0.05 * torch.randn_like(p)
                p.add_(change)
                q.add_(change)
        runner.changed()
        if t == 5:  # an episode starts for member 0
            start = torch.tensor([True] + [False] * (P - 1))
            memory = MemoryNetwork.reset_memory(memory, start)
            native_memory = MemoryNetwork.reset_memory(native_memory, start)
        memory, native_memory = step_and_compare(net, runner, memory, native_memory, (1e-10, 1e-12), (1e-10, 1e-12))
        corrected = max(corrected, float(memory.corrections["B_real"].abs().max()))
        net.cell._taylor_previous = tuple(p.detach().clone() for p in net.cell.parameters())  # that step moved none
    assert corrected > 1e-3  # the correction was not zero all along


@pytest.mark.parametrize("head_width", [0, 7], ids=["linear-head", "head-block"])
@pytest.mark.parametrize("cell", ["gru", "ffn"])
@pytest.mark.parametrize("feature_layers", [1, 2])
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh"])
def test_native_gru_and_ffn_networks_equal_autograd(cell, feature_layers, activation, head_width):
    """TBPTT(1) cells: out_t, the carried state and d(g · out_t)/dθ through one step from the detached state, over
    7 steps; a forward pass without ``advance`` leaves the state alone."""

    def make():
        torch.manual_seed(0)
        return MemoryNetwork(
            OBS,
            OUT,
            cell=cell,
            mode="tbptt",
            hidden_size=5,
            width=6,
            sparsity=0.5,
            population=P,
            activation=activation,
            feature_layers=feature_layers,
            head_width=head_width,
            generators=[torch.Generator().manual_seed(i) for i in range(P)],
        ).double()

    net, twin = make(), make()
    runner = native.network(twin, native.flatten_parameters(list(twin.parameters())))
    grad = torch.zeros_like(runner.flat)
    memory = native_memory = net.initial_memory().double()
    for _ in range(7):
        obs, grad_out = torch.randn(P, OBS, dtype=torch.float64), torch.randn(P, OUT, dtype=torch.float64)
        memory = memory + 0.3 * torch.randn_like(memory)  # a state the gradient must not flow into
        native_memory = memory.clone()
        out, memory = net.step(obs, memory)
        expected = flat_grads(torch.autograd.grad((grad_out * out).sum(), list(net.parameters())))
        same, unchanged, _ = runner.forward(obs, native_memory, advance=False)
        assert torch.equal(unchanged, native_memory) and torch.allclose(same, out.detach(), rtol=1e-12, atol=1e-13)
        got, native_memory, tape = runner.forward(obs, native_memory, advance=True)
        assert torch.allclose(got, out.detach(), rtol=1e-12, atol=1e-13)
        assert torch.allclose(native_memory, memory, rtol=1e-12, atol=1e-13)
        runner.backward(grad, grad_out, tape, native_memory)
        assert torch.allclose(grad, expected, rtol=1e-10, atol=1e-13)


def agent_pair(agent: str, discrete: bool = True, **overrides):
    config = TrainConfig(
        agent=agent,
        hidden_size=5,
        width=6,
        population=P,
        dtype="float64",
        **(dict(lr_q=0.05, lr_h=0.02) if agent == "qrc" else {}),  # (QRC's step sizes act on QRC only)
        activation="leaky_relu" if discrete else "tanh",
        **overrides,
    )
    space = gym.spaces.Discrete(OUT) if discrete else gym.spaces.Box(-1, 1, (OUT,))

    def make(engine):
        return make_agent(
            dataclasses.replace(config, engine=engine),
            OBS,
            space,
            [torch.Generator().manual_seed(i) for i in range(P)],
            MemberRandom([5, 6], dtype=torch.float64),
        )

    return make("native"), make("eager")


@pytest.mark.parametrize(
    "agent, discrete, overrides",
    [
        ("stream_ac", True, {}),
        ("stream_ac", False, dict(nonlinear_rtu=True)),
        ("qrc", True, {}),
        ("qrc", True, dict(grad_clip=0.01, nonlinear_rtu=True, feature_layers=2)),
        ("stream_ac", True, dict(mode="tbptt", nonlinear_rtu=True)),
        ("qrc", True, dict(mode="tbptt")),
        ("qrc", True, dict(cell="gru")),
        ("qrc", True, dict(cell="ffn", grad_clip=0.01, feature_layers=2)),
        ("stream_ac", True, dict(cell="gru")),
        ("stream_ac", False, dict(cell="gru", feature_layers=2)),
        ("stream_ac", True, dict(cell="ffn")),
        ("stream_ac", True, dict(head_width=7, feature_layers=2)),
        ("stream_ac", False, dict(head_width=7, nonlinear_rtu=True)),
        ("qrc", True, dict(head_width=7, grad_clip=0.01)),
        ("qrc", True, dict(cell="gru", head_width=7)),
        ("stream_ac", False, dict(cell="gru", head_width=7)),
        ("qrc", True, dict(taylor_sensitivity=True)),
        ("stream_ac", True, dict(taylor_sensitivity=True)),
        ("stream_ac", False, dict(taylor_sensitivity=True, head_width=7, feature_layers=2)),
        ("qrc", True, dict(no_gradient_correction=True, grad_clip=0.01)),
    ],
    ids=[
        "stream-ac-categorical",
        "stream-ac-gaussian-nonlinear",
        "qrc",
        "qrc-clipped-nonlinear-two-blocks",
        "stream-ac-tbptt-nonlinear",
        "qrc-tbptt",
        "qrc-gru",
        "qrc-ffn-clipped-two-blocks",
        "stream-ac-gru",
        "stream-ac-gru-gaussian-two-blocks",
        "stream-ac-ffn",
        "stream-ac-head-block-two-blocks",
        "stream-ac-gaussian-head-block",
        "qrc-head-block-clipped",
        "qrc-gru-head-block",
        "stream-ac-gru-gaussian-head-block",
        "qrc-taylor",
        "stream-ac-taylor",
        "stream-ac-gaussian-taylor-head-block-two-blocks",
        "qrc-no-gradient-correction-clipped",
    ],
)
def test_native_agent_takes_the_eager_agents_steps(agent, discrete, overrides):
    torch.manual_seed(2)
    fast, eager = agent_pair(agent, discrete, **overrides)
    assert fast.engine == "native" and eager.engine != "native"
    for t in range(15):
        obs = torch.randn(P, OBS, dtype=torch.float64)
        reward, next_obs = torch.randn(P, dtype=torch.float64), torch.randn(P, OBS, dtype=torch.float64)
        done = torch.tensor([t % 5 == 4, t % 7 == 6])
        steps = fast.act(obs), eager.act(obs)
        actions = steps[0].action, steps[1].action
        assert torch.equal(*actions) if discrete else torch.allclose(*actions, rtol=1e-10)
        deltas = fast.learn(steps[0], reward, next_obs, done, done), eager.learn(steps[1], reward, next_obs, done, done)
        assert torch.allclose(*deltas, rtol=1e-10, atol=1e-12)
    for a, b in zip(fast.networks.values(), eager.networks.values()):
        for p, q in zip(a.parameters(), b.parameters()):
            assert torch.allclose(p, q, rtol=1e-9, atol=1e-11)
    for name, memory in fast.memories.items():  # the native loops write the linear RTU's S^B_imag from S^B_real
        other = eager.memories[name]
        for s, t in zip(*((m,) if isinstance(m, torch.Tensor) else m for m in (memory, other))):
            assert torch.allclose(s, t.to(s.dtype), rtol=1e-9, atol=1e-11), name  # (the FFN: empty)
    if agent == "qrc":
        assert torch.allclose(fast.q_trace_flat, eager.q_trace_flat, rtol=1e-9, atol=1e-11)
    for _ in range(3):  # evaluation: the native engine advances the recurrence alone, to the same states and actions
        obs = torch.randn(P, OBS, dtype=torch.float64)
        actions = fast.act(obs, greedy=True, learn=False).action, eager.act(obs, greedy=True, learn=False).action
        assert torch.equal(*actions) if discrete else torch.allclose(*actions, rtol=1e-10)
        name = "q" if agent == "qrc" else "actor"
        hidden = [MemoryNetwork.hidden_state(a.memories[name]) for a in (fast, eager)]
        assert torch.allclose(hidden[0], hidden[1].to(hidden[0].dtype), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_qrc_choice_and_targets_follow_torch_ties_and_nans(dtype):
    """The native ε-greedy choice and TD error take torch's argmax / max (the first of equal maxima, a NaN as the
    largest) and round each operation as the eager tensor code does (bitwise, float32 included)."""
    module = native.load()
    gen = torch.Generator().manual_seed(0)
    P, A = 64, 4
    q = torch.randint(0, 3, (P, A), generator=gen).to(dtype)  # many ties
    q[5, 2] = q[9, 0] = q[9, 3] = float("nan")
    h = torch.randn(P, A, generator=gen, dtype=dtype)
    draws = torch.rand(P, 7, generator=gen, dtype=dtype)[:, 2:4]  # a non-contiguous block, as the streams serve it
    greedy = q.argmax(dim=-1)
    random = (draws[:, 1] * A).long().clamp(max=A - 1)
    action = torch.where(draws[:, 0] < 0.3, random, greedy)
    chosen = module.qrc_choose(q, h, draws, 0.3)
    assert torch.equal(chosen[0], action) and torch.equal(chosen[3], action != greedy)
    assert torch.allclose(chosen[1], q.gather(1, action[:, None])[:, 0], equal_nan=True, rtol=0, atol=0)
    assert torch.equal(chosen[2], h.gather(1, action[:, None])[:, 0])

    next_q = torch.randn(P, A, generator=gen, dtype=dtype)
    next_q[:, 1] = next_q[:, 3]  # ties
    reward, q_a = torch.randn(P, generator=gen, dtype=dtype), torch.randn(P, generator=gen, dtype=dtype)
    terminated, done = torch.rand(P, generator=gen) < 0.2, torch.rand(P, generator=gen) < 0.3
    bias = torch.randn(P, generator=gen, dtype=dtype)
    gamma, decay = 0.99, 0.99 * 0.8
    best_q, best = next_q.max(dim=-1)
    discount = gamma * (~terminated).to(dtype)
    delta = reward + discount * best_q - q_a
    expected_bias = bias.clone().mul_(decay).add_(chosen[2])
    cut = done | chosen[3]
    td, coeffs, onehot, onehot_next = module.qrc_targets(
        next_q, reward, terminated, done, q_a, chosen[2], chosen[0], chosen[3], bias, gamma, decay, True
    )
    assert torch.equal(td, delta)
    assert torch.equal(coeffs, torch.stack([expected_bias, discount, delta, chosen[2], cut.to(dtype)], 1))
    assert torch.equal(bias, expected_bias.masked_fill(cut, 0.0))
    assert torch.equal(onehot, torch.eye(A, dtype=dtype)[chosen[0]])
    assert torch.equal(onehot_next, torch.eye(A, dtype=dtype)[best])


@pytest.mark.parametrize("discrete", [True, False])
def test_native_stream_ac_sampling_and_targets_equal_the_policy_functions(discrete):
    """The native categorical sample and Stream AC's TD error and output gradients equal ``agents.policy``'s
    (float64; the categorical actions exactly, draws near the CDF's steps included)."""
    from rtu_core.agents.policy import categorical_action, categorical_grad, gaussian_grads

    module = native.load()
    gen = torch.Generator().manual_seed(1)
    P, A = 64, 5
    out = torch.randn(P, A, generator=gen, dtype=torch.float64)
    uniform = torch.rand(P, 3, generator=gen, dtype=torch.float64)[:, 1:2]
    uniform[:8, 0] = torch.log_softmax(out[:8], -1).exp().cumsum(-1)[:, 2] + 1e-12  # just past a step
    if discrete:
        action, log_std = module.categorical_sample(out, uniform), None
        assert torch.equal(action, categorical_action(out, uniform))
    else:
        action, log_std = torch.randn(P, A, generator=gen, dtype=torch.float64), torch.randn(P, A, generator=gen) / 3
        log_std = log_std.double()
    value, reward = (
        torch.randn(P, generator=gen, dtype=torch.float64),
        torch.randn(P, generator=gen, dtype=torch.float64),
    )
    next_value = torch.randn(P, 1, generator=gen, dtype=torch.float64)  # the critic's output, (P, 1)
    terminated = torch.rand(P, generator=gen) < 0.3
    gamma, eta = 0.99, 0.01
    td, grad, grad_log_std = module.stream_ac_targets(
        out, action, value, next_value, reward, terminated, None if discrete else log_std.exp(), gamma, eta
    )
    delta = reward + gamma * next_value[:, 0] * (~terminated) - value
    assert torch.equal(td, delta)
    if discrete:
        assert torch.allclose(grad, categorical_grad(out, action, eta * delta.sign()), rtol=1e-13, atol=1e-15)
    else:
        expected = gaussian_grads(out, log_std, action, eta * delta.sign())
        assert torch.allclose(grad, expected[0], rtol=1e-13, atol=1e-15)
        assert torch.allclose(grad_log_std, expected[1], rtol=1e-13, atol=1e-15)


def test_native_population_members_equal_their_solo_runs_bit_for_bit():
    base = TrainConfig(agent="qrc", chain_length=3, steps=600, hidden_size=8, width=8, eval_episodes=5, engine="native")
    members = [dataclasses.replace(base, seed=s, chain_length=L) for s, L in ((0, 3), (1, 5), (2, 3))]
    population = RunRecorder(members)
    for event in train(members):
        population.record(event)
    for i, member in enumerate(members):
        solo = RunRecorder(member)
        for event in train(member):
            solo.record(event)
        assert population.episodes_csv(i) == solo.episodes_csv(0)
        assert population.member_summary(i)["eval_return"] == solo.member_summary(0)["eval_return"]


def test_where_the_native_step_applies():
    def native_step(**fields) -> bool:
        return engines.preferred(TrainConfig(**fields)).step == "native"

    assert native_step() and native_step(agent="qrc")
    assert not native_step(engine="eager")
    assert native_step(mode="tbptt")  # the RTU's TBPTT(1): one-step sensitivities
    assert native_step(cell="gru") and native_step(agent="qrc", cell="ffn")
    assert native_step(env="popgym:RepeatFirstEasy")  # its preset's head has a hidden block
    assert native_step(env="mujoco:Hopper", cell="gru")
    assert native_step(taylor_sensitivity=True)
    assert native_step(agent="qrc", taylor_sensitivity=True)
    assert not native_step(taylor_sensitivity=True, nonlinear_rtu=True)  # the linear RTU's correction
    assert not native_step(optimizer="adaptive_obgd")
    with pytest.raises(ValueError, match="engine native"):
        TrainConfig(engine="native", optimizer="adaptive_obgd")


def test_the_native_step_shares_the_python_constants_and_coefficients():
    """The C++ keeps its own copy of the feature blocks' and the RTU's formulas: its constants are the Python's, and
    its six RTU coefficients per unit are ``cells.rtu.eigen``'s, in that order (float64)."""
    from rtu_core import layers
    from rtu_core.cells import rtu

    module = native.load()
    assert (module.layer_norm_eps, module.leaky_slope) == (layers.LAYER_NORM_EPS, layers.LEAKY_SLOPE)
    assert module.input_scale_eps == rtu.INPUT_SCALE_EPS
    net = make_network(False, "leaky_relu")
    runner = native.network(net, native.flatten_parameters(list(net.parameters())))
    coefficients = runner._coefficients().view(P, 6, -1)
    for i, expected in enumerate(rtu.eigen(net.cell.nu_log.detach(), net.cell.theta_log.detach())):
        assert torch.allclose(coefficients[:, i], expected, rtol=1e-13, atol=1e-15), rtu.Eigen._fields[i]


@pytest.mark.parametrize("discrete", [True, False], ids=["categorical", "gaussian"])
def test_native_stream_ac_targets_are_the_rules_td_error_and_output_gradient(discrete):
    """The C++ computes δ and the policy's output gradient itself: the same numbers as ``agents.stream_ac``'s
    ``td_error`` and ``output_gradient`` (float64)."""
    from rtu_core.agents.policy import categorical_action, gaussian_action
    from rtu_core.agents.stream_ac import output_gradient, td_error

    g = torch.Generator().manual_seed(4)
    out = torch.randn(P, OUT, generator=g, dtype=torch.float64)
    value, next_value, reward = (torch.randn(P, generator=g, dtype=torch.float64) for _ in range(3))
    terminated = torch.tensor([True, False])
    log_std = None if discrete else 0.3 * torch.randn(P, OUT, generator=g, dtype=torch.float64)
    if discrete:
        action = categorical_action(out, torch.rand(P, 1, generator=g, dtype=torch.float64))
    else:
        action = gaussian_action(out, log_std, torch.randn(P, OUT, generator=g, dtype=torch.float64))
    delta, grad_out, grad_log_std = native.load().stream_ac_targets(
        out, action, value, next_value, reward, terminated, None if discrete else log_std.exp(), 0.97, 0.01
    )
    assert torch.allclose(delta, td_error(reward, next_value, terminated, value, 0.97), rtol=1e-14, atol=1e-15)
    expected_out, expected_log_std = output_gradient(out, action, delta, 0.01, log_std)
    assert torch.allclose(grad_out, expected_out, rtol=1e-12, atol=1e-14)
    if not discrete:
        assert torch.allclose(grad_log_std, expected_log_std, rtol=1e-12, atol=1e-14)
