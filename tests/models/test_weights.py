import logging

import pytest
import torch

from scaling.models import create_mae, create_model
from scaling.models.weights import (
    WeightsError,
    detect_format,
    load_encoder_weights,
    load_mae_weights,
    read_weights,
    save_safetensors,
)

OFFICIAL_DECODER = {
    "embed.": "decoder_embed.",
    "mask_token": "mask_token",
    "pos_embed": "decoder_pos_embed",
    "blocks.": "decoder_blocks.",
    "norm.": "decoder_norm.",
    "pred.": "decoder_pred.",
}


def _as_official_mae(sd):
    """Our MAE keys -> facebookresearch/mae keys, written independently of the module under test."""
    out = {}
    for k, v in sd.items():
        if k.startswith("encoder."):
            out[k[len("encoder.") :]] = v
        else:
            rest = k[len("decoder.") :]
            for ours, theirs in OFFICIAL_DECODER.items():
                if rest.startswith(ours):
                    out[theirs + rest[len(ours) :]] = v
                    break
    return out


def test_safetensors_roundtrip(tmp_path):
    model = create_model("vit_nano_patch4", num_classes=3)
    save_safetensors(model.state_dict(), tmp_path / "w.safetensors")
    fresh = create_model("vit_nano_patch4", num_classes=3)
    load_encoder_weights(fresh, tmp_path / "w.safetensors", keep_head=True)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)


def test_official_mae_checkpoint_loads(tmp_path):
    src = create_mae("vit_nano_patch4")
    official = _as_official_mae(src.state_dict())
    assert detect_format(official) == "mae"
    torch.save({"model": official, "epoch": 799}, tmp_path / "mae_pretrain.pth")
    dst = create_mae("vit_nano_patch4")
    load_mae_weights(dst, tmp_path / "mae_pretrain.pth")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # and its encoder alone into a classifier, head left fresh
    clf = create_model("vit_nano_patch4", num_classes=4)
    head_before = clf.head.weight.clone()
    load_encoder_weights(clf, tmp_path / "mae_pretrain.pth")
    assert torch.equal(clf.blocks[0].attn.qkv.weight, src.encoder.blocks[0].attn.qkv.weight)
    assert torch.equal(clf.head.weight, head_before)


def test_maws_clip_checkpoint_loads_vision_tower(tmp_path):
    src = create_model("vit_nano_patch4")
    sd = {"vision_encoder." + k: v for k, v in src.state_dict().items()}
    sd.update(
        {
            "text_encoder.layer.weight": torch.zeros(3),
            "logit_scale": torch.zeros(()),
            "vision_projection": torch.zeros(32, 8),
        }
    )
    torch.save(sd, tmp_path / "maws.pt")
    dst = create_model("vit_nano_patch4")
    load_encoder_weights(dst, tmp_path / "maws.pt")
    assert torch.equal(dst.pos_embed, src.pos_embed)


def test_pos_embed_resampled_to_new_grid_with_log(tmp_path, caplog):
    src = create_model("vit_nano_patch4", img_size=16)  # 4x4 grid
    save_safetensors(src.state_dict(), tmp_path / "w.safetensors")
    dst = create_model("vit_nano_patch4", img_size=32)  # 8x8 grid
    with caplog.at_level(logging.INFO):
        load_encoder_weights(dst, tmp_path / "w.safetensors")
    assert dst.pos_embed.shape == (1, 65, 32)
    assert torch.equal(dst.pos_embed[:, 0], src.pos_embed[:, 0])  # cls row untouched
    assert "4x4 to a 8x8" in caplog.text


def test_missing_and_unexpected_keys_are_named(tmp_path, caplog):
    sd = create_model("vit_nano_patch4").state_dict()
    del sd["blocks.1.mlp.fc2.bias"]
    sd["blocks.9.extra"] = torch.zeros(2)
    model = create_model("vit_nano_patch4")
    with pytest.raises(WeightsError) as e:
        load_encoder_weights(model, sd)
    assert "blocks.1.mlp.fc2.bias" in str(e.value) and "blocks.9.extra" in str(e.value)
    with caplog.at_level(logging.WARNING):
        load_encoder_weights(model, sd, strict=False)
    assert "blocks.9.extra" in caplog.text


class _RunsCodeWhenUnpickled:
    def __reduce__(self):
        import os

        return (os.makedirs, (self.target,))


def test_pickled_code_is_refused(tmp_path):
    evil = _RunsCodeWhenUnpickled()
    evil.target = str(tmp_path / "pwned")
    torch.save({"model": {"w": torch.zeros(1)}, "payload": evil}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="safetensors"):
        read_weights(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_encoder_only_file_into_mae_is_clear(tmp_path):
    save_safetensors(create_model("vit_nano_patch4").state_dict(), tmp_path / "enc.safetensors")
    with pytest.raises(WeightsError, match="load_encoder_weights"):
        load_mae_weights(create_mae("vit_nano_patch4"), tmp_path / "enc.safetensors")
