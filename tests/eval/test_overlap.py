"""`scaling eval` compares train and val by content: equal names are fine (CIFAR's train/c0/0.png and
val/c0/0.png), the same image in both is refused, as a copied file or re-encoded with the same pixels."""

import io
import json

from eval_helpers import VAL
from PIL import Image, PngImagePlugin

from scaling.data.eval_set import EvalSet
from scaling.eval import cli
from scaling.eval.overlap import content_hashes, duplicates


def _cifar_style(root, images):
    """root/c{label}/{i}.png: the naming of CIFAR exported with the usual tools (the same in train and val)."""
    for i, (label, image) in enumerate(images):
        path = root / f"c{label}" / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return str(root)


def _images(lo, hi):
    out = []
    for s in EvalSet(VAL).read(lo, hi):
        with Image.open(io.BytesIO(s.image)) as img:
            out.append((s.label, img.convert("RGB")))
    return out


def _argv(tmp_path, train, val):
    return ["--weights", "random:vit_micro_patch4", "--protocol", "knn", "--train", train, "--val", val,
            "--out", str(tmp_path / "knn.json"), "--cache-dir", str(tmp_path / "cache"), "--k", "3"]


def test_distinct_images_with_equal_names_are_accepted(tmp_path):
    train = _cifar_style(tmp_path / "train", _images(0, 40))
    val = _cifar_style(tmp_path / "val", _images(40, 70))  # val/c0/0.png exists in train too, another image
    assert (tmp_path / "train" / "c0").is_dir() and set((tmp_path / "val").rglob("*.png")) and any(
        (tmp_path / "train" / p.relative_to(tmp_path / "val")).is_file() for p in (tmp_path / "val").rglob("*.png"))
    assert cli.main(_argv(tmp_path, train, val)) == 0
    assert json.loads((tmp_path / "knn.json").read_text())["settings"]["val_samples"] == 30


def test_copies_and_re_encoded_copies_are_refused_with_count_and_examples(tmp_path, capsys):
    images = _images(0, 40)
    train_root, val_root = tmp_path / "train", tmp_path / "val"
    train = _cifar_style(train_root, images)
    _cifar_style(val_root, _images(40, 80))
    (a_label, _), (b_label, b), (c_label, c) = images[3], images[7], images[11]
    # 1: a train file copied; 2: the same pixels in another PNG (compression level, a text chunk): other bytes
    (val_root / f"c{a_label}" / "copy.png").write_bytes((train_root / f"c{a_label}" / "3.png").read_bytes())
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "re-saved")
    b.save(val_root / f"c{b_label}" / "resaved.png", compress_level=1, pnginfo=info)
    assert (val_root / f"c{b_label}" / "resaved.png").read_bytes() != (
        train_root / f"c{b_label}" / "7.png").read_bytes()
    # 3: a JPEG in train, its lossless PNG conversion in val
    c.save(train_root / f"c{c_label}" / "photo.jpg", quality=90)
    with Image.open(train_root / f"c{c_label}" / "photo.jpg") as jpeg:
        jpeg.convert("RGB").save(val_root / f"c{c_label}" / "converted.png")

    assert cli.main(_argv(tmp_path, train, str(val_root))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds 3 of its 43 images also in --train" in err, err
    assert "1 identical files, 2 the same pixels in another file" in err
    assert f"val c{a_label}_copy = train c{a_label}_3 (identical file)" in err and "(same pixels)" in err
    assert not (tmp_path / "knn.json").exists()  # refused before anything is written


def test_shards_against_a_folder_and_the_cache(tmp_path):
    """The bundled val shards against a folder holding 5 of their JPEGs: found across formats; the hashes of a
    set are computed once (the second call reads the cache)."""
    from fmnist_tree import class_tree

    tree = EvalSet(class_tree(tmp_path / "tree", 1, skip=2))  # 10 images, one per class
    shards = EvalSet(VAL)
    first = content_hashes(shards, tmp_path / "cache")
    found = duplicates(first, content_hashes(tree, tmp_path / "cache"))
    assert len(found) == 10 and all(kind == "identical file" for _, _, kind in found)
    assert len(list((tmp_path / "cache" / "content").glob("*.npz"))) == 2
    again = content_hashes(shards, tmp_path / "cache")
    assert again.keys == first.keys and (again.pixels == first.pixels).all()
