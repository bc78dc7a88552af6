"""The vocabulary file: labels of captions, its hash, and every malformed file refused in one line naming the
rebuild."""

from __future__ import annotations

import json
import pickle

import pytest

from scaling.config import ConfigError
from scaling.data.captions import TermOptions
from scaling.data.vocab import CaptionVocab, load_vocab, write_vocab

TERMS = [("dress", 9, 8), ("#ootd", 5, 5), ("boot", 4, 3), ("bag", 2, 2)]


def _file(tmp_path, terms=TERMS, options: TermOptions | None = None, edit: dict | None = None) -> str:
    """A file written by write_vocab, then with the keys of `edit` replaced."""
    path = tmp_path / "vocab.json"
    write_vocab(str(path), terms, options or TermOptions(), source="test")
    if edit:
        data = json.loads(path.read_text())
        data.update(edit)
        path.write_text(json.dumps(data))
    return str(path)


def test_labels_are_term_ids_in_caption_order_each_once(tmp_path):
    vocab = load_vocab(_file(tmp_path))
    assert len(vocab) == 4 and vocab.terms == ["dress", "#ootd", "boot", "bag"]
    assert vocab.labels("Two BAGS and red dresses #OOTD, a dress") == [3, 0, 1]
    assert vocab.labels("nothing of it") == [] and vocab.labels("") == []
    clone = pickle.loads(pickle.dumps(vocab))  # as DataLoader workers receive it: no file read
    assert clone.labels("boots") == [2] and clone.sha256 == vocab.sha256


def test_the_hash_depends_on_terms_order_and_options_not_on_counts(tmp_path):
    base = CaptionVocab(["dress", "boot"]).sha256
    assert CaptionVocab(["dress", "boot"]).sha256 == base
    assert CaptionVocab(["boot", "dress"]).sha256 != base
    assert CaptionVocab(["dress", "boot"], TermOptions(hashtags=False)).sha256 != base
    recounted = [(t, c + 1, d + 1) for t, c, d in TERMS]
    assert load_vocab(_file(tmp_path, recounted)).sha256 == load_vocab(_file(tmp_path)).sha256
    assert json.loads((tmp_path / "vocab.json").read_text())["sha256"] == load_vocab(_file(tmp_path)).sha256


def _refused(path: str) -> str:
    with pytest.raises(ConfigError) as e:
        load_vocab(path)
    msg = str(e.value)
    assert "\n" not in msg and "scaling data vocab" in msg, msg
    return msg


def test_bad_files_are_refused_in_one_line(tmp_path):
    assert "does not exist" in _refused(str(tmp_path / "missing.json"))
    (tmp_path / "empty.json").write_text("  \n")
    assert "is empty" in _refused(str(tmp_path / "empty.json"))
    (tmp_path / "broken.json").write_text('{"format": "scaling.caption_vocab/1", "terms": [')
    assert "is not JSON" in _refused(str(tmp_path / "broken.json"))
    (tmp_path / "other.json").write_text(json.dumps({"format": "scaling.shards/1", "shards": []}))
    assert "is not a scaling.caption_vocab/1 file" in _refused(str(tmp_path / "other.json"))
    assert "holds no terms" in _refused(_file(tmp_path, terms=[]))
    assert "a term twice" in _refused(_file(tmp_path, terms=TERMS + [("bag", 1, 1)]))
    assert "not a word" in _refused(_file(tmp_path, edit={"terms": [{"term": "bag"}, {"count": 3}]}))


def test_a_vocabulary_built_with_other_options_is_refused(tmp_path):
    msg = _refused(_file(tmp_path, edit={"normalizer": "scaling.captions/0"}))
    assert "normaliser 'scaling.captions/0'" in msg
    assert "other normalisation options" in _refused(_file(tmp_path, edit={"options": {"lowercase": True}}))
    # terms counted without the plural rule, in a file that claims it: "boots" is not a term of its options
    msg = _refused(_file(tmp_path, terms=[("dress", 3, 3), ("boots", 2, 2)]))
    assert "'boots' becomes ['boot']" in msg and "other options than the reader's" in msg
    # the same terms with the options they were counted with are fine
    assert load_vocab(_file(tmp_path, [("dress", 3, 3), ("boots", 2, 2)], TermOptions(plurals=False))).labels(
        "boots") == [1]
