"""The caption normaliser: what becomes a term, and that a term is its own term (vocab files rely on it)."""

from __future__ import annotations

import json

import pytest

from scaling.config import ConfigError
from scaling.data import captions
from scaling.data.captions import Normalizer, TermOptions, caption_of, singular


def test_terms_of_typical_web_captions():
    n = Normalizer()
    assert n.terms("A photo of a T-shirt/top, #OOTD #Fashion") == ["photo", "t-shirt", "top", "#ootd", "#fashion"]
    assert n.terms("Women's ankle boots on SALE!! https://shop.example.com/a?b=1 www.x.org") == [
        "women", "ankle", "boot", "sale"]
    assert n.terms("Dresses, berries, glass, bus, watches, boxes and iris") == [
        "dress", "berry", "glass", "bus", "watch", "box", "iris"]
    assert n.terms("the dress, THE DRESS and the dresses") == ["dress"]  # distinct, first-appearance order
    assert n.terms("") == [] and n.terms("of the and 2019 99 a") == []  # stop-words and numbers only
    assert n.terms("ＤＲＥＳＳ café’s crème_brûlée 4k") == ["dress", "café", "crème", "brûlée", "4k"]  # NFKC


def test_options_change_the_terms():
    text = "The cats and #Dogs of them"
    assert Normalizer(TermOptions()).terms(text) == ["cat", "#dogs"]
    assert Normalizer(TermOptions(plurals=False)).terms(text) == ["cats", "#dogs"]
    assert Normalizer(TermOptions(hashtags=False)).terms(text) == ["cat"]
    assert Normalizer(TermOptions(stop_words="none")).terms(text) == ["the", "cat", "and", "#dogs", "of", "them"]
    assert Normalizer(TermOptions(min_length=4)).terms("red cats and oxen boxes") == ["oxen"]  # box: 3 letters
    with pytest.raises(ConfigError, match="stop_words"):
        TermOptions(stop_words="french")
    with pytest.raises(ConfigError, match="--min-length 0"):
        TermOptions(min_length=0)


@pytest.mark.parametrize("options", [TermOptions(), TermOptions(plurals=False), TermOptions(min_length=4),
                                     TermOptions(stop_words="none")])
def test_every_term_is_its_own_term(options):
    words = ("dresses glasses buses boxes watches brushes quizzes berries boys toys pants shoes analyses oxes "
             "stresses kiss cats women's don't t-shirts #Tags ties series axes is us as").split()
    n = Normalizer(options)
    for word in words:
        for term in n.terms(word):
            assert n.terms(term) == [term], (word, term)


def test_singular_leaves_non_plurals_alone():
    assert [singular(w) for w in ("glass", "bus", "iris", "gas", "dresses", "ladies", "boots")] == [
        "glass", "bus", "iris", "gas", "dress", "lady", "boot"]


def test_the_token_cache_is_bounded_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(captions, "MEMO_LIMIT", 8)
    n, fresh = Normalizer(), [f"word{i}a shoes{i}b" for i in range(50)]
    got = [n.terms(t) for t in fresh]
    assert len(n._memo) <= 8 and n.term_list("shoes shoes, red") == ["shoe", "shoe", "red"]
    assert got == [Normalizer().terms(t) for t in fresh]


def test_caption_of_prefers_txt_then_json_caption_or_text():
    meta = json.dumps({"caption": "from json", "url": "u"}).encode()
    assert caption_of({"txt": b"from txt", "json": meta}) == "from txt"
    assert caption_of({"json": meta}) == "from json"
    assert caption_of({"json": json.dumps({"text": "text field"}).encode()}) == "text field"
    assert caption_of({"txt": b""}) == ""
    assert caption_of({"json": json.dumps({"caption": None}).encode()}) is None  # img2dataset without captions
    assert caption_of({"json": b"{broken"}) is None and caption_of({}) is None
