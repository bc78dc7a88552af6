"""flash_attention (Triton, interpreter) vs a float64 reference: forward and the three input gradients."""

import random

import pytest
import torch

from scaling.kernels import attention_reference, flash_attention, supports_fused_attention
from scaling.kernels._support import new_output, poisoned_outputs
from scaling.kernels.attention import INTERPRETER_CONFIG, head_split

TOL = {torch.float32: 1e-5, torch.float16: 5e-3}


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    """|got - ref| / |ref| (Frobenius) in float64, |got - ref| where ref is all zero (e.g. dq for N=1);
    NaN anywhere in `got` (a poisoned, unwritten element) gives NaN, which fails any `< tol`."""
    diff = (got.double() - ref.double()).norm()
    denom = ref.double().norm()
    return (diff / denom if denom > 0 else diff).item()
# Interpreter blocks are 16-32 rows: these N cover one partial block, exact multiples and ragged tails.
assert INTERPRETER_CONFIG.fwd.m == 32 and INTERPRETER_CONFIG.dq.n == 16


def _inputs(B, H, N, D, dtype, gen, layout):
    if layout == "qkv":  # views of one projection, as the model passes them: strided, never copied
        qkv = torch.randn(B, N, 3 * H * D, generator=gen).to(dtype)
        return qkv.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0), qkv
    q, k, v = (torch.randn(B, H, N, D, generator=gen).to(dtype) for _ in range(3))
    return (q, k, v), None


def _check_against_float64(B, H, N, D, dtype, seed, layout="qkv"):
    gen = torch.Generator().manual_seed(seed)
    (q, k, v), base = _inputs(B, H, N, D, dtype, gen, layout)
    leaves = [base] if base is not None else [q, k, v]
    for t in leaves:
        t.requires_grad_()
    if base is not None:
        q, k, v = base.reshape(B, N, 3, H, D).permute(2, 0, 3, 1, 4).unbind(0)
    out = flash_attention(q, k, v)
    do = torch.randn(B, H, N, D, generator=gen).to(dtype)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), do)

    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    ref = attention_reference(q64, k64, v64)
    rq, rk, rv = torch.autograd.grad(ref, (q64, k64, v64), do.double())
    assert out.dtype == dtype and out.shape == (B, H, N, D)
    errs = {"out": rel_err(out, ref), "dq": rel_err(dq, rq), "dk": rel_err(dk, rk), "dv": rel_err(dv, rv)}
    assert all(e < TOL[dtype] for e in errs.values()), f"{(B, H, N, D, dtype, seed)}: {errs}"


@pytest.mark.parametrize(
    "dtype,B,H,N,D,layout",
    [
        (torch.float32, 1, 2, 37, 64, "qkv"),
        (torch.float32, 2, 1, 50, 80, "qkv"),  # the MAE encoder's 50 tokens, ViT-H head dim
        (torch.float32, 1, 1, 33, 128, "separate"),
        (torch.float32, 1, 2, 64, 64, "separate"),  # N an exact multiple of every block
        (torch.float32, 1, 1, 1, 80, "qkv"),  # a single token
        (torch.float16, 1, 2, 70, 64, "separate"),
        (torch.float16, 1, 1, 17, 80, "qkv"),
        (torch.float16, 2, 1, 41, 128, "qkv"),
    ],
)
def test_forward_and_grads_match_float64(dtype, B, H, N, D, layout):
    _check_against_float64(B, H, N, D, dtype, seed=1000 * N + D, layout=layout)


def test_random_shapes_match_float64():
    seed = random.randrange(2**31)  # fresh shapes every run; the seed is in the failure message
    rng = random.Random(seed)
    for case in range(3):
        D = rng.choice((64, 80, 128))
        N = rng.randrange(2, 60)
        dtype = rng.choice((torch.float32, torch.float16))
        _check_against_float64(1, rng.choice((1, 2)), N, D, dtype, seed=seed + case)


@pytest.mark.parametrize("D", [16, 48, 96, 112])
def test_other_head_dims_use_head_and_tail_parts(D):
    da, db = head_split(D)
    assert da + db >= D and da & (da - 1) == 0 and (db == 0 or db >= 16)
    _check_against_float64(1, 1, 19, D, torch.float32, seed=D)


def test_head_split_of_vit_head_dims():
    assert head_split(64) == (64, 0)
    assert head_split(80) == (64, 16)  # ViT-H/2B: 80 columns of work, not 128
    assert head_split(128) == (128, 0)


# The zero-filled key rows past N overflow inside the dK/dV kernel too (2^(0 - lse) = inf), but those rows
# are never stored: numpy's warnings about them are expected.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_extreme_scores_stay_finite():
    # Scores around -600 (base 2) make 2^(0 - lse) overflow for the zero-filled keys past N: the dQ kernel
    # must mask them, not multiply inf by 0. And +600 exercises the running max of the online softmax.
    gen = torch.Generator().manual_seed(7)
    N, D = 21, 64  # 21 keys: a ragged last key block
    for sign in (-1.0, 1.0):
        q = (20.0 + torch.rand(1, 1, N, D, generator=gen)).requires_grad_()
        k = (sign * (1.0 + torch.rand(1, 1, N, D, generator=gen))).requires_grad_()
        v = torch.randn(1, 1, N, D, generator=gen).requires_grad_()
        out = flash_attention(q, k, v)
        grads = torch.autograd.grad(out.square().sum(), (q, k, v))
        q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
        ref = attention_reference(q64, k64, v64)
        ref_grads = torch.autograd.grad(ref.square().sum(), (q64, k64, v64))
        # fp32 rounds scores of magnitude ~600 by ~4e-5, so results agree to ~1e-5, not 1e-7.
        assert rel_err(out, ref) < 1e-4
        for g, rg in zip(grads, ref_grads):
            assert torch.isfinite(g).all()
            assert rel_err(g, rg) < 1e-4


def test_broadcast_upstream_gradient():
    # out.sum().backward() hands the kernel a dO with all strides 0.
    gen = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 23, 64, generator=gen).requires_grad_() for _ in range(3))
    flash_attention(q, k, v).sum().backward()
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    attention_reference(q64, k64, v64).sum().backward()
    for t, r in ((q, q64), (k, k64), (v, v64)):
        assert rel_err(t.grad, r.grad) < 1e-5


def test_backward_is_deterministic():
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 1, 45, 80, generator=gen).requires_grad_() for _ in range(3))
    do = torch.randn(1, 1, 45, 80, generator=gen)
    first = torch.autograd.grad(flash_attention(q, k, v), (q, k, v), do)
    second = torch.autograd.grad(flash_attention(q, k, v), (q, k, v), do)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_poisoning_fills_outputs():
    with poisoned_outputs():
        assert torch.isnan(new_output((3,), torch.float32, torch.device("cpu"))).all()
        assert (new_output((3,), torch.int64, torch.device("cpu")) < 0).all()


@pytest.mark.parametrize(
    "shape,dtype,match",
    [
        ((1, 1, 8, 64), torch.bfloat16, "not supported on the Triton interpreter"),
        ((1, 1, 8, 64), torch.float64, "supported: torch.float32, torch.float16"),
        ((1, 1, 8, 256), torch.float32, "head dim 256 not supported; supported: multiples of 16"),
        ((1, 1, 8, 72), torch.float32, "head dim 72"),  # D % 16 == 8 computed wrong results on a GPU
        ((1, 1, 8, 8), torch.float32, "head dim 8"),
        ((8, 64), torch.float32, r"expected \(B, H, N, D\)"),
    ],
)
def test_unsupported_inputs_raise_naming_what_is_supported(shape, dtype, match):
    q = torch.zeros(shape, dtype=dtype)
    ok, reason = supports_fused_attention(q)
    assert not ok and reason
    with pytest.raises(ValueError, match=match):
        flash_attention(q, q, q)


def test_mismatched_k_raises():
    q = torch.zeros(1, 1, 8, 64)
    with pytest.raises(ValueError, match="k must match q"):
        flash_attention(q, torch.zeros(1, 1, 9, 64), q)


def test_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    q = torch.zeros(1, 1, 8, 64)
    ok, reason = supports_fused_attention(q)
    assert not ok and "TRITON_INTERPRET=1" in reason
    with pytest.raises(ValueError, match="CUDA tensors"):
        flash_attention(q, q, q)


@pytest.mark.slow
@pytest.mark.parametrize("N,D", [(197, 64), (257, 80), (130, 128)])
def test_vit_sequence_lengths(N, D):
    _check_against_float64(2, 2, N, D, torch.float32, seed=N + D)
    _check_against_float64(1, 2, N, D, torch.float16, seed=N + D + 1, layout="separate")
