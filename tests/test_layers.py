import pytest
import torch

from rtu_core.layers import Linear, sparse_init_


@pytest.mark.parametrize("fan_in,expected_zeros", [(3, 2), (10, 9), (128, 116), (1, 0)])
def test_sparse_init_zeroes_a_fraction_per_row_but_never_a_whole_row(fan_in, expected_zeros):
    weight = torch.empty(64, fan_in)
    sparse_init_(weight, 0.9, torch.Generator().manual_seed(0))
    zeros_per_row = (weight == 0).sum(1)
    assert torch.all(zeros_per_row == expected_zeros)
    assert float(weight.abs().max()) <= fan_in**-0.5


def test_population_linear_members_are_their_own_seeds():
    gens = [torch.Generator().manual_seed(s) for s in (4, 5)]
    pop = Linear(6, 3, population=2, generators=gens)
    solo = Linear(6, 3, generators=torch.Generator().manual_seed(5))
    assert torch.equal(pop.weight[1], solo.weight) and not torch.equal(pop.weight[0], pop.weight[1])
    x = torch.randn(2, 6)
    assert torch.allclose(pop(x)[1], solo(x[1]))
