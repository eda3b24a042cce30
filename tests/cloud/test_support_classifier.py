"""The classifier's dataset is what the issue asks for — eight categories, English and romanized
Hindi, at least 600 labelled examples, a held-out test set that shares nothing with training —
and the model trained from it is the one the desk records. (Its accuracy is measured by
`bench/support_classifier.py`, not asserted here.)"""

from __future__ import annotations

import re
from collections import Counter

from cloud.support.classifier import CATEGORIES, Classifier, load_examples


def tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_the_dataset_covers_every_category_in_both_languages() -> None:
    examples, version = load_examples()
    assert len(examples) >= 600
    assert re.fullmatch(r"queries_v1@[0-9a-f]{12}", version)
    cells = Counter((e.category, e.language, e.split) for e in examples)
    for category in CATEGORIES:
        for language in ("en", "hi-latn"):
            assert cells[(category, language, "train")] >= 20, (category, language)
            assert cells[(category, language, "test")] >= 5, (category, language)
    assert {e.language for e in examples} == {"en", "hi-latn"}
    assert not any(re.search(r"[\u0900-\u097f]", e.text) for e in examples)  # no Devanagari


def test_no_test_example_is_a_near_copy_of_a_training_one() -> None:
    examples, _ = load_examples()
    train = [tokens(e.text) for e in examples if e.split == "train"]
    for example in (e for e in examples if e.split == "test"):
        words = tokens(example.text)
        for seen in train:
            overlap = len(words & seen) / len(words | seen)
            assert overlap <= 0.8, example.text


def test_the_model_names_its_dataset_and_says_how_sure_it_is() -> None:
    classifier = Classifier()
    prediction = classifier.classify("Meter ki screen blank hai aur usme se awaaz aa rahi hai")
    assert prediction.model_version == classifier.version
    assert prediction.category in CATEGORIES
    assert 0 < prediction.confidence <= 1
    # the same words, in a thousand times their length, are bounded, not refused
    long = classifier.classify("no power " * 1000)
    assert long.category == "outage"
