"""`scaling data write` and `inspect`; our shards in stock webdataset, stock shards in our reader."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import webdataset as wds
from data_helpers import jpeg_bytes, write_tar
from PIL import Image

from scaling.data import DataConfig, build_train_loader
from scaling.data.cli import main
from scaling.data.shards import list_shards


def test_write_folder_tree(tmp_path: Path, make_images) -> None:
    src = make_images([5, 3, 4])
    (src / "class_1" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    png = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 10, 10)).save(png, "PNG")
    (src / "class_2" / "red.png").write_bytes(png.getvalue())
    args = ["write", str(src), str(tmp_path / "out"), "--shard-size", "5", "--workers", "2", "--quiet"]
    assert main(args) == 0
    manifest = json.loads((tmp_path / "out" / "shards.json").read_text())
    assert manifest["classes"] == ["class_0", "class_1", "class_2"] and manifest["label_field"] == "cls"
    counts = [s["samples"] for s in manifest["shards"]]  # 14 inputs in shards of 5, one of them broken
    assert manifest["num_samples"] == 13 and len(counts) == 3 and sum(counts) == 13
    assert manifest["skipped"] == {"corrupt_image": 1}
    # Stock webdataset reads our shards; the keys are sanitised and the labels match the folders.
    ds = wds.WebDataset(str(tmp_path / "out" / "{000000..000002}.tar"), shardshuffle=False).decode("pil")
    samples = list(ds.to_tuple("__key__", "jpg", "cls"))
    assert len(samples) == 13
    keys = [k for k, _, _ in samples]
    assert all("/" not in k and "." not in k and " " not in k for k in keys)
    assert keys != sorted(keys)  # shuffled at write time
    for key, image, cls in samples:
        assert key.startswith(manifest["classes"][cls]) and image.mode == "RGB"
    red = next(im for k, im, _ in samples if k == "class_2_red")  # the PNG was re-encoded as JPEG
    assert red.size == (20, 10) and red.getpixel((5, 5))[0] > 150


def test_write_list_file_with_multi_labels(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"p{i}.jpg").write_bytes(jpeg_bytes(i))
    lines = [
        "p0.jpg cat",
        "p1.jpg dog cat",
        "p2.jpg\tbird",
        "p3.jpg dog",
        "p4.jpg cat bird dog",
        "missing.jpg cat",
    ]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\np5.jpg bird\n")
    assert (
        main(["write", str(tmp_path / "train.txt"), str(tmp_path / "out"), "--quiet", "--workers", "1"]) == 0
    )
    manifest = json.loads((tmp_path / "out" / "shards.json").read_text())
    assert manifest["label_field"] == "json" and manifest["classes"] == ["bird", "cat", "dog"]
    assert manifest["num_samples"] == 6 and manifest["skipped"] == {"unreadable_file": 1}
    cfg = DataConfig(train=str(tmp_path / "out"), mode="epoch", workers=0)
    loader = build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=6, rank=0, world_size=1, seed=0)
    batch = next(loader)
    target = dict(zip(batch["key"], batch["target"].tolist()))
    assert target["p4"] == pytest.approx([1 / 3] * 3) and target["p1"] == pytest.approx([0, 0.5, 0.5])
    assert target["p2"] == [1.0, 0.0, 0.0]


def test_img2dataset_shards_are_read_as_they_are(tmp_path: Path) -> None:
    """Stock-written shards (webdataset.TarWriter, img2dataset layout) -> inspect -> our reader."""
    folder = tmp_path / "i2d"
    folder.mkdir()
    for s in range(2):
        with wds.TarWriter(str(folder / f"{s:05d}.tar")) as sink:
            for i in range(5 + 2 * s):
                key = f"{s:05d}{i:04d}"
                meta = {"url": f"http://x/{key}.jpg", "caption": "a photo", "key": key, "status": "success"}
                sink.write({"__key__": key, "jpg": jpeg_bytes(10 * s + i), "json": meta, "txt": "a photo"})
    assert main(["inspect", str(folder), "--write-manifest", "--quiet"]) == 0
    shards = list_shards(str(folder))
    assert list(shards.counts) == [5, 7] and shards.label_field == "none"
    cfg = DataConfig(train=str(folder / "{00000..00001}.tar"), mode="epoch", workers=0)
    loader = build_train_loader(cfg, stage="mae", image_size=16, micro_batch=4, rank=0, world_size=1, seed=0)
    keys = [k for _ in range(3) for k in next(loader)["key"]]
    assert sorted(keys) == sorted([f"00000{i:04d}" for i in range(5)] + [f"00001{i:04d}" for i in range(7)])
    with pytest.raises(Exception, match="holds no labels"):
        build_train_loader(cfg, stage="wsp", image_size=16, micro_batch=4, rank=0, world_size=1, seed=0)
    # ...and re-sharded with a labels file, they train a classifier.
    (tmp_path / "tags.tsv").write_text(
        "".join(f"0000{s}{i:04d}\t#t{i % 2}\n" for s in range(2) for i in range(7))
    )
    out = tmp_path / "labelled"
    assert main(["write", str(folder), str(out), "--labels", str(tmp_path / "tags.tsv"), "--quiet"]) == 0
    manifest = json.loads((out / "shards.json").read_text())
    assert manifest["classes"] == ["#t0", "#t1"] and manifest["num_samples"] == 12


def test_inspect_reports_damage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_tar(tmp_path / "a.tar", [{"__key__": f"k{i}", "jpg": jpeg_bytes(i)} for i in range(4)])
    data = (tmp_path / "a.tar").read_bytes()
    (tmp_path / "b.tar").write_bytes(data[: len(data) // 2 + 7])
    assert main(["inspect", str(tmp_path / "{a,b}.tar"), "--json", "--quiet"]) == 1
    info = json.loads(capsys.readouterr().out)
    assert info["shards"] == 2 and len(info["damaged_shards"]) == 1 and "b.tar" in info["damaged_shards"][0]


def test_write_refuses_to_overwrite(tmp_path: Path, make_images, capsys: pytest.CaptureFixture) -> None:
    src = make_images([2])
    assert main(["write", str(src), str(tmp_path / "o"), "--quiet"]) == 0
    assert main(["write", str(src), str(tmp_path / "o"), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["write", "inspect", "bench"])
def test_help_has_an_example(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "example:" in capsys.readouterr().out


def test_bench_reports_the_ratio(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_tar(tmp_path / "b.tar", [{"__key__": f"k{i}", "jpg": jpeg_bytes(i, 64, 48)} for i in range(16)])
    args = [
        "bench",
        str(tmp_path / "b.tar"),
        "--workers",
        "0",
        "--images",
        "8",
        "--batch",
        "4",
        "--rounds",
        "1",
    ]
    assert main([*args, "--image-size", "32", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("img_per_s_per_worker", "reference_img_per_s_per_worker", "ratio"):
        assert result[key] > 0
    assert result["dataset"]["mean_width"] == 64


def test_shards_are_plain_tars(tmp_path: Path, make_images) -> None:
    main(["write", str(make_images([3])), str(tmp_path / "o"), "--quiet"])
    with tarfile.open(tmp_path / "o" / "000000.tar") as tar:
        names = tar.getnames()
    assert sorted(n.rsplit(".", 1)[1] for n in names) == ["cls"] * 3 + ["jpg"] * 3


def test_max_size_shrinks_big_images(tmp_path: Path, make_images) -> None:
    src = make_images([3])  # 40 x 32 JPEGs
    assert main(["write", str(src), str(tmp_path / "o"), "--max-size", "16", "--quiet"]) == 0
    sizes = [
        im.size
        for im in wds.WebDataset(str(tmp_path / "o" / "000000.tar"), shardshuffle=False)
        .decode("pil")
        .to_tuple("jpg")
        .map(lambda t: t[0])
    ]
    assert sizes == [(20, 16)] * 3
