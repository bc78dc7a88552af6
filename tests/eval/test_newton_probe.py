"""The probe's Newton solver (small problems) reaches the optimum L-BFGS reaches, with a vanishing gradient
checked by autograd, and fit_logreg picks it by problem size."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scaling.eval import probe


def _blobs(n: int, d: int, c: int, spread: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(c, d, generator=g, dtype=torch.float64) * spread
    y = torch.arange(n) % c
    return centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64), y


def _objective_grad(model: probe.LinearModel, x: torch.Tensor, y: torch.Tensor, wd: float) -> float:
    w = model.weight.clone().requires_grad_()
    b = model.bias.clone().requires_grad_()
    z = (x.double() - model.mu) / model.sd
    loss = F.cross_entropy(z @ w + b, y) + 0.5 * wd * (w * w).sum()
    loss.backward()
    return max(float(w.grad.abs().max()), float(b.grad.abs().max()))


def test_newton_and_lbfgs_reach_the_same_optimum(monkeypatch):
    x, y = _blobs(300, 8, 4, spread=1.0)
    newton = probe.fit_logreg(x, y, 4, 1e-2)
    monkeypatch.setattr(probe, "NEWTON_MAX_FLOPS", 0)
    lbfgs = probe.fit_logreg(x, y, 4, 1e-2, max_iter=5000)
    assert (newton.solver, lbfgs.solver) == ("newton", "lbfgs")
    assert newton.iterations < 30 < lbfgs.iterations
    assert _objective_grad(newton, x, y, 1e-2) <= 1e-8
    assert torch.allclose(newton.weight, lbfgs.weight, atol=1e-5)
    # The bias is defined up to a shift shared by all classes: compare the probabilities.
    assert torch.allclose(newton.scores(x).softmax(1), lbfgs.scores(x).softmax(1), atol=1e-6)


def test_separable_data_with_a_tiny_decay_stays_finite():
    x, y = _blobs(40, 6, 4, spread=8.0)  # far-apart blobs: the optimum's weights are huge at wd 1e-6
    m = probe.fit_logreg(x, y, 4, 1e-6)
    assert m.solver == "newton" and torch.isfinite(m.weight).all() and torch.isfinite(m.bias).all()
    assert (m.scores(x).argmax(1) == y).all()


@pytest.mark.parametrize(("n", "d", "c", "solver"), [(100, 64, 10, "newton"), (2000, 64, 10, "newton"),
                                                      (200, 768, 10, "lbfgs"), (50, 64, 1000, "lbfgs")])
def test_the_solver_follows_the_problem_size(n, d, c, solver, monkeypatch):
    seen = []
    real = probe.newton_logreg
    monkeypatch.setattr(probe, "newton_logreg", lambda *a, **k: seen.append(1) or real(*a, **k))
    x, y = torch.randn(n, d), torch.arange(n) % c
    assert probe.fit_logreg(x, y, c, 1e-1, max_iter=2).solver == solver
    assert bool(seen) == (solver == "newton")
