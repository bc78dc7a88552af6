"""Fused MAE masking (Triton, interpreter) vs reference.py: indices, outputs and gradients bit-identical."""

import pytest
import torch

from scaling.kernels import (
    fused_mask_gather,
    fused_unshuffle_fill,
    keep_count,
    mask_gather_reference,
    mask_noise,
    sample_seeds,
    supports_fused_masking,
    unshuffle_fill_reference,
)
from scaling.kernels.masking import INTERPRETER_BLOCKS

# Interpreter tiles: 16 patches x 32 channels, so L=49 / D=40 have ragged tails and D=72 spans 3 d-blocks.
assert (INTERPRETER_BLOCKS.rows, INTERPRETER_BLOCKS.cols) == (16, 32)


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_()


def _gather_both(x, pos, seeds, len_keep, gen):
    """Run fused and reference on copies of the same leaves; return (outputs, grads) for each."""
    results = []
    g_kept = None
    for fused in (True, False):
        lx, lpos = _leaf(x), _leaf(pos)
        if fused:
            outs = fused_mask_gather(lx, lpos, seeds, len_keep)
        else:
            outs = mask_gather_reference(lx, lpos, mask_noise(seeds, x.shape[1]), len_keep)
        if g_kept is None:
            g_kept = torch.randn(outs[0].shape, generator=gen).to(outs[0].dtype)
        outs[0].backward(g_kept)
        results.append((outs, (lx.grad, lpos.grad)))
    return results


def _assert_identical(got, want, names):
    for name, a, b in zip(names, got, want):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert torch.equal(a, b), f"{name} differs"


@pytest.mark.parametrize(
    "B,L,D,len_keep,x_dtype,pos_dtype,pos_shape",
    [
        (3, 49, 40, 12, torch.float32, torch.float32, "1LD"),  # MAE 75% masking of a 7x7 grid
        (2, 16, 72, 4, torch.float32, torch.float32, "LD"),  # L one block exactly, D over 3 blocks
        (2, 49, 24, 0, torch.float32, torch.float32, "1LD"),  # keep nothing
        (2, 20, 16, 20, torch.float32, torch.float32, "LD"),  # keep everything
        (2, 33, 40, 8, torch.float16, torch.float16, "1LD"),
        (2, 33, 40, 8, torch.float16, torch.float32, "LD"),  # mixed: x + pos promotes to fp32
    ],
)
def test_mask_gather_equals_reference(B, L, D, len_keep, x_dtype, pos_dtype, pos_shape):
    gen = torch.Generator().manual_seed(B * 1000 + L * 10 + len_keep)
    x = torch.randn(B, L, D, generator=gen).to(x_dtype)
    pos = torch.randn(L, D, generator=gen).to(pos_dtype)
    pos = pos[None] if pos_shape == "1LD" else pos
    seeds = torch.randint(0, 2**62, (B,), generator=gen)
    (f_out, f_grads), (r_out, r_grads) = _gather_both(x, pos, seeds, len_keep, gen)
    _assert_identical(f_out, r_out, ["x_kept", "ids_keep", "ids_restore", "mask"])
    _assert_identical(f_grads, r_grads, ["dx", "dpos"])
    assert (f_out[3].sum(1) == L - len_keep).all()


def _seeds_with_tied_noise(L: int, count: int) -> torch.Tensor:
    # 24-bit noise: a row of 128 values holds a tie with probability ~5e-4, so ~10 in 20k candidates.
    candidates = torch.arange(20000, dtype=torch.int64) * 7919 + 12345
    noise = mask_noise(candidates, L).sort(dim=1).values
    tied = (noise[:, 1:] == noise[:, :-1]).any(dim=1)
    assert tied.sum() >= count, "no seed with tied noise among the candidates"
    return candidates[tied][:count]


def test_tied_noise_is_broken_by_position_like_stable_argsort():
    L = 128
    seeds = _seeds_with_tied_noise(L, 2)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(2, L, 16, generator=gen)
    pos = torch.randn(1, L, 16, generator=gen)
    got = fused_mask_gather(x, pos, seeds, 32)
    want = mask_gather_reference(x, pos, mask_noise(seeds, L), 32)
    # ids_restore is the whole ranking, so every tied pair is checked, kept or not.
    _assert_identical(got, want, ["x_kept", "ids_keep", "ids_restore", "mask"])


def test_masks_reproduce_from_seed_step_rank():
    # A resumed run passes the same (seed, step, rank) and must mask exactly as before.
    L, D, B, len_keep = 36, 8, 3, keep_count(36, 0.75)
    x, pos = torch.randn(B, L, D), torch.zeros(L, D)
    first = fused_mask_gather(x, pos, sample_seeds(0, 1234, 3, B), len_keep)[2]
    again = fused_mask_gather(x, pos, sample_seeds(0, 1234, 3, B), len_keep)[2]
    next_step = fused_mask_gather(x, pos, sample_seeds(0, 1235, 3, B), len_keep)[2]
    other_rank = fused_mask_gather(x, pos, sample_seeds(0, 1234, 2, B), len_keep)[2]
    assert torch.equal(first, again)
    assert not torch.equal(first, next_step) and not torch.equal(first, other_rank)
    assert len({tuple(row.tolist()) for row in first}) == B  # samples of one batch differ


@pytest.mark.parametrize(
    "B,L,D,K,x_dtype,p_dtype,mt_shape",
    [
        (3, 49, 40, 12, torch.float32, torch.float32, "11D"),
        (2, 16, 72, 4, torch.float32, torch.float32, "D"),
        (2, 20, 24, 0, torch.float32, torch.float32, "11D"),  # all mask tokens
        (2, 20, 24, 20, torch.float32, torch.float32, "D"),  # no mask token
        (2, 33, 40, 8, torch.float16, torch.float16, "11D"),
        (2, 33, 40, 8, torch.float16, torch.float32, "D"),  # mask token rounded to fp16 first, as in the ref
    ],
)
def test_unshuffle_fill_equals_reference(B, L, D, K, x_dtype, p_dtype, mt_shape):
    gen = torch.Generator().manual_seed(B * 1000 + L * 10 + K)
    x_kept = torch.randn(B, K, D, generator=gen).to(x_dtype)
    mask_token = torch.randn(D, generator=gen).to(p_dtype)
    mask_token = mask_token.reshape(1, 1, D) if mt_shape == "11D" else mask_token
    pos = torch.randn(1, L, D, generator=gen).to(p_dtype)
    ids_restore = torch.argsort(torch.rand(B, L, generator=gen), dim=1)
    g_out = None
    results = []
    for fused in (True, False):
        leaves = [_leaf(x_kept), _leaf(mask_token), _leaf(pos)]
        fn = fused_unshuffle_fill if fused else unshuffle_fill_reference
        out = fn(leaves[0], leaves[1], ids_restore, leaves[2])
        if g_out is None:
            g_out = torch.randn(out.shape, generator=gen).to(out.dtype)
        out.backward(g_out)
        results.append([out, *(t.grad for t in leaves)])
    _assert_identical(results[0], results[1], ["out", "dx_kept", "dmask_token", "dpos"])


def test_encoder_decoder_chain_on_strided_inputs():
    # x as a transposed view and x_kept as a slice: the kernels read strides, nothing is copied.
    gen = torch.Generator().manual_seed(2)
    B, L, D, Dd, K = 2, 36, 24, 16, 9
    x = torch.randn(B, D, L, generator=gen).transpose(1, 2)
    pos = torch.randn(L, D, generator=gen)
    seeds = sample_seeds(7, 0, 0, B)
    dec_in = torch.randn(B, K + 1, Dd, generator=gen)[:, 1:]  # drop a cls token: a strided view
    mask_token, dec_pos = torch.randn(1, 1, Dd, generator=gen), torch.randn(1, L, Dd, generator=gen)
    x_kept, _, ids_restore, _ = fused_mask_gather(x, pos, seeds, K)
    ref_kept, _, ref_restore, _ = mask_gather_reference(x, pos, mask_noise(seeds, L), K)
    assert torch.equal(x_kept, ref_kept) and torch.equal(ids_restore, ref_restore)
    out = fused_unshuffle_fill(dec_in, mask_token, ids_restore, dec_pos)
    assert torch.equal(out, unshuffle_fill_reference(dec_in, mask_token, ref_restore, dec_pos))


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda x, p, s: fused_mask_gather(x, p, s.to(torch.int32), 4), "seeds must be int64"),
        (lambda x, p, s: fused_mask_gather(x, p, s, 17), r"len_keep must be in \[0, 16\]"),
        (lambda x, p, s: fused_mask_gather(x, p[:8], s, 4), r"pos_embed must be \[16, 8\]"),
        (lambda x, p, s: fused_mask_gather(x.bfloat16(), p, s, 4), "bfloat16 not supported on the Triton"),
        (lambda x, p, s: fused_mask_gather(x, p.double(), s, 4), "pos_embed dtype torch.float64"),
        (lambda x, p, s: fused_unshuffle_fill(x[:, :4], p[0], torch.zeros(2, 16, dtype=torch.int32), p),
         "ids_restore must be int64"),
        (lambda x, p, s: fused_unshuffle_fill(x[:, :4], p[0, :3], torch.zeros(2, 16, dtype=torch.int64), p),
         "mask_token must be"),
    ],
)
def test_bad_inputs_raise_clearly(call, match):
    x, pos, seeds = torch.randn(2, 16, 8), torch.randn(16, 8), torch.tensor([1, 2], dtype=torch.int64)
    with pytest.raises(ValueError, match=match):
        call(x, pos, seeds)


def test_cpu_without_interpreter_is_refused(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x = torch.randn(2, 16, 8)
    ok, reason = supports_fused_masking(x)
    assert not ok and "TRITON_INTERPRET=1" in reason
    with pytest.raises(ValueError, match="use the reference on CPU"):
        fused_mask_gather(x, torch.zeros(16, 8), torch.tensor([1, 2]), 4)


@pytest.mark.slow
def test_mae_base_sizes():
    # ViT-B/16 MAE at 224px: 196 patches, 49 kept (64 channels: the interpreter is slow per program).
    gen = torch.Generator().manual_seed(0)
    x, pos = torch.randn(2, 196, 64, generator=gen), torch.randn(1, 196, 64, generator=gen)
    seeds = sample_seeds(0, 5, 1, 2)
    (f_out, f_grads), (r_out, r_grads) = _gather_both(x, pos, seeds, 49, gen)
    _assert_identical([*f_out, *f_grads], [*r_out, *r_grads], ["x_kept", "ids_keep", "ids_restore", "mask",
                                                                 "dx", "dpos"])
