"""Losses against hand computations."""

from __future__ import annotations

import math

import torch

from deeplandscape.train.losses import d_logistic_loss, d_r1_penalty, g_nonsaturating_loss


class LinearD(torch.nn.Module):
    """D(x) = <a, x> + b: its input gradient is `a` for every sample."""

    def __init__(self, shape):
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(shape))
        self.b = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        return (x * self.a).flatten(1).sum(1, keepdim=True) + self.b


def test_r1_equals_hand_computation_on_linear_d():
    torch.manual_seed(0)
    D = LinearD((2, 3, 4, 4))  # a pair discriminator's input shape
    x = torch.randn(5, 2, 3, 4, 4, requires_grad=True)
    r1 = d_r1_penalty(D(x), x)
    torch.testing.assert_close(r1, D.a.pow(2).sum())
    # The penalty is differentiable w.r.t. D's weights: d/da ||a||^2 = 2a.
    r1.backward()
    torch.testing.assert_close(D.a.grad, 2 * D.a.detach())


def test_r1_on_quadratic_d():
    """D(x) = sum x^2 / 2: grad = x, so R1 = mean over samples of ||x||^2."""
    x = torch.randn(6, 3, 5, 5, requires_grad=True)
    logits = 0.5 * x.pow(2).flatten(1).sum(1)
    torch.testing.assert_close(d_r1_penalty(logits, x), x.detach().pow(2).flatten(1).sum(1).mean())


def test_logistic_losses():
    real, fake = torch.tensor([[0.0], [2.0]]), torch.tensor([[0.0], [-1.0]])
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    expected_d = (sp(0.0) + sp(-1.0)) / 2 + (sp(-0.0) + sp(-2.0)) / 2
    assert d_logistic_loss(real, fake).item() == torch.tensor(expected_d).item()
    assert abs(g_nonsaturating_loss(fake).item() - (sp(0.0) + sp(1.0)) / 2) < 1e-6
