"""MAE semantics: masking, norm-pix loss on masked patches only, equality with models_mae.py's algorithm."""

import pytest
import torch
from timm.models.vision_transformer import Block as TimmBlock

from scaling.kernels import mask_noise, sample_seeds
from scaling.models import create_mae
from scaling.models.masking import mask_gather


@pytest.mark.parametrize("L", [16, 49, 196, 256])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9, 0.95])
def test_kept_count_and_restore_inverse(L, ratio):
    B, D = 3, 8
    x = torch.randn(B, L, D)
    pos = torch.randn(L, D)
    noise = torch.rand(B, L)
    keep = int(L * (1 - ratio))
    kept, ids_keep, ids_restore, mask = mask_gather(x, pos, keep, noise=noise)
    assert kept.shape == (B, keep, D)
    assert (mask.sum(1) == L - keep).all()
    # ids_restore inverts the shuffle: shuffle then restore is the identity permutation
    ids_shuffle = torch.argsort(noise, dim=1, stable=True)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(L).expand(B, L))
    # independent reference: keep the `keep` smallest-noise positions, in ascending-noise order
    for b in range(B):
        order = sorted(range(L), key=lambda i: (noise[b, i].item(), i))[:keep]
        assert ids_keep[b].tolist() == order
        assert torch.equal(kept[b], (x[b] + pos)[order])
        assert mask[b, order].sum() == 0


def test_seeded_masks_are_reproducible_and_differ_across_steps_and_ranks():
    a = mask_noise(sample_seeds(7, step=3, rank=1, batch_size=4), 196)
    b = mask_noise(sample_seeds(7, step=3, rank=1, batch_size=4), 196)
    c = mask_noise(sample_seeds(7, step=4, rank=1, batch_size=4), 196)
    d = mask_noise(sample_seeds(7, step=3, rank=0, batch_size=4), 196)
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)
    assert not torch.equal(a[0], a[1])  # samples in a batch get different masks
    assert 0.0 <= a.min() and a.max() < 1.0


def test_loss_counts_masked_patches_only():
    torch.manual_seed(0)
    model = create_mae("vit_micro_patch4").eval()
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    with torch.no_grad():
        loss, pred, mask = model(imgs, noise=noise)
        # Replace the prediction of every *visible* patch with garbage: the loss must not change.
        target = model.patchify(imgs)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
        garbage = pred.clone()
        garbage[mask == 0] = 1e3
        assert torch.allclose(model.loss(imgs, garbage, mask), loss)
        # A perfect prediction on masked patches gives zero loss, whatever the visible ones hold.
        perfect = torch.where(mask.bool()[..., None], target, garbage)
        assert model.loss(imgs, perfect, mask).item() < 1e-10


def test_norm_pix_target_is_per_patch():
    model = create_mae("vit_nano_patch4")
    imgs = torch.randn(1, 3, 16, 16)
    mask = torch.ones(1, 16)
    # Shifting and scaling one patch's pixels leaves its normalised target unchanged.
    p = model.patchify(imgs)
    p2 = p.clone()
    p2[0, 5] = p2[0, 5] * 3.0 + 10.0
    pred = torch.zeros_like(p)
    imgs2 = model.unpatchify(p2)
    assert torch.allclose(model.loss(imgs, pred, mask), model.loss(imgs2, pred, mask), atol=1e-5)
    model.norm_pix_loss = False
    assert not torch.allclose(model.loss(imgs, pred, mask), model.loss(imgs2, pred, mask))


def _mae_reference_forward(model, imgs, noise, mask_ratio):
    """facebookresearch/mae models_mae.py's algorithm, written independently on timm Blocks."""
    sd = model.state_dict()
    s = model.spec

    def blocks(prefix, depth, width, heads):
        out = []
        for i in range(depth):
            blk = TimmBlock(
                width,
                heads,
                mlp_ratio=4.0 if prefix == "decoder" else s.mlp_dim / width,
                qkv_bias=True,
                norm_layer=lambda d, **kw: torch.nn.LayerNorm(d, eps=1e-6, **kw),
            )
            blk.load_state_dict(
                {
                    k[len(f"{prefix}.blocks.{i}.") :]: v
                    for k, v in sd.items()
                    if k.startswith(f"{prefix}.blocks.{i}.")
                }
            )
            out.append(blk.eval())
        return out

    # encoder
    x = (
        torch.nn.functional.conv2d(
            imgs,
            sd["encoder.patch_embed.proj.weight"],
            sd["encoder.patch_embed.proj.bias"],
            stride=s.patch_size,
        )
        .flatten(2)
        .transpose(1, 2)
    )
    x = x + sd["encoder.pos_embed"][:, 1:, :]
    N, L, D = x.shape
    len_keep = int(L * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))
    mask = torch.ones([N, L])
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)
    cls = sd["encoder.cls_token"] + sd["encoder.pos_embed"][:, :1, :]
    x = torch.cat((cls.expand(x.shape[0], -1, -1), x), dim=1)
    for blk in blocks("encoder", s.depth, s.width, s.heads):
        x = blk(x)
    x = torch.nn.functional.layer_norm(x, (D,), sd["encoder.norm.weight"], sd["encoder.norm.bias"], eps=1e-6)
    # decoder
    x = x @ sd["decoder.embed.weight"].T + sd["decoder.embed.bias"]
    mask_tokens = sd["decoder.mask_token"].repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1)
    x = x + sd["decoder.pos_embed"]
    for blk in blocks("decoder", s.decoder_depth, s.decoder_width, s.decoder_heads):
        x = blk(x)
    x = torch.nn.functional.layer_norm(
        x, (s.decoder_width,), sd["decoder.norm.weight"], sd["decoder.norm.bias"], eps=1e-6
    )
    pred = (x @ sd["decoder.pred.weight"].T + sd["decoder.pred.bias"])[:, 1:, :]
    target = model.patchify(imgs)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum(), pred, mask


@pytest.mark.parametrize("ratio", [0.75, 0.5])
def test_equals_models_mae_algorithm_for_same_noise(ratio):
    torch.manual_seed(3)
    model = create_mae("vit_micro_patch4").eval()
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    with torch.no_grad():
        loss, pred, mask = model(imgs, mask_ratio=ratio, noise=noise)
        ref_loss, ref_pred, ref_mask = _mae_reference_forward(model, imgs, noise, ratio)
    assert torch.equal(mask, ref_mask)
    assert (pred - ref_pred).abs().max() < 1e-5
    assert abs(loss.item() - ref_loss.item()) < 1e-5


def test_sincos_pos_embed_matches_mae_numpy_formula():
    import numpy as np

    from scaling.models.pos_embed import sincos_2d

    def mae_1d(embed_dim, pos):
        omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
        omega = 1.0 / 10000**omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    dim, g = 16, 5
    grid_h = np.arange(g, dtype=np.float32)
    grid_w = np.arange(g, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, g, g])
    emb = np.concatenate([mae_1d(dim // 2, grid[0]), mae_1d(dim // 2, grid[1])], axis=1)
    emb = np.concatenate([np.zeros([1, dim]), emb], axis=0)
    assert np.allclose(sincos_2d(dim, g).numpy(), emb, atol=1e-6)


def test_norm_pix_target_statistics_are_fp32_in_bf16_runs():
    """bf16 images (a bf16 run's normalised inputs): the loss equals the one computed from the same bf16
    values in float64, to fp32 precision; with the patch mean and variance taken in bf16 it was ~1e-2 off."""
    torch.manual_seed(0)
    model = create_mae("vit_micro_patch4")
    # patches around a large mean with a small spread: what bf16 statistics get most wrong
    images = (2.5 + 0.05 * torch.randn(2, 3, 32, 32)).to(torch.bfloat16)
    L, D = model.spec.num_patches, model.spec.patch_size**2 * 3
    pred = torch.randn(2, L, D).to(torch.bfloat16)
    mask = (torch.rand(2, L) < 0.75).float()
    target = model.patchify(images.double())
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1.0e-6) ** 0.5
    want = ((((pred.double() - target) ** 2).mean(-1) * mask).sum() / mask.sum()).item()
    got = model.loss(images, pred, mask).item()
    assert abs(got - want) <= 1e-5 * abs(want), (got, want)
