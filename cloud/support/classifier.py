"""The support desk's query classifier: which of eight categories a consumer's words are about,
and how sure it is.

The model is trained here, on this machine, from the labelled queries the project ships
(`labelled/queries_v1.csv`: English and romanized Hindi, each row marked `train` or `test`);
nothing is downloaded. Training takes about a second and happens once per process, on first use.
Character n-grams carry romanized Hindi's many spellings (`bijli`, `bijlee`; `nahi`, `nhi`) and
typos; word n-grams carry phrases ("per unit", "not reflected"). The version names the dataset
file and its digest, so a query records exactly which model judged it.

`bench/support_classifier.py` measures it on the held-out rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from dataclasses import dataclass
from functools import cached_property
from importlib import resources

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

CATEGORIES = (
    "high_bill",
    "billing_error",
    "meter_fault",
    "outage",
    "connection",
    "tariff",
    "payment",
    "other",
)
DATASET = "queries_v1.csv"
MAX_TEXT = 4000


@dataclass(frozen=True)
class Example:
    text: str
    category: str
    language: str
    split: str


@dataclass(frozen=True)
class Prediction:
    category: str
    confidence: float  # the model's probability of that category, 0 to 1
    model_version: str


def load_examples(name: str = DATASET) -> tuple[list[Example], str]:
    """The labelled rows and the dataset's version (`<name>@<sha256 prefix>`)."""
    raw = resources.files(__package__).joinpath("labelled", name).read_bytes()
    rows = [
        Example(r["text"], r["category"], r["language"], r["split"])
        for r in csv.DictReader(io.StringIO(raw.decode("utf-8")))
    ]
    unknown = {r.category for r in rows} - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{name}: unknown categories {sorted(unknown)}")
    return rows, f"{name.removesuffix('.csv')}@{hashlib.sha256(raw).hexdigest()[:12]}"


def build_pipeline() -> Pipeline:
    features = FeatureUnion(
        [
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, lowercase=True
                ),
            ),
            (
                "words",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=(1, 2),
                    sublinear_tf=True,
                    lowercase=True,
                    token_pattern=r"(?u)\b\w+\b",  # noqa: S106 (one-letter words count)
                ),
            ),
        ]
    )
    return Pipeline([("features", features), ("model", LogisticRegression(C=10, max_iter=3000))])


class Classifier:
    """Trained on the `train` rows of a dataset; safe to share between threads once built."""

    def __init__(self, name: str = DATASET) -> None:
        self.examples, self.version = load_examples(name)

    @cached_property
    def pipeline(self) -> Pipeline:
        train = [e for e in self.examples if e.split == "train"]
        pipeline = build_pipeline()
        pipeline.fit([e.text for e in train], [e.category for e in train])
        return pipeline

    def classify(self, text: str) -> Prediction:
        probabilities = self.pipeline.predict_proba([text[:MAX_TEXT]])[0]
        best = int(probabilities.argmax())
        return Prediction(
            str(self.pipeline.classes_[best]), round(float(probabilities[best]), 3), self.version
        )


_shared: Classifier | None = None
_lock = threading.Lock()


def shared() -> Classifier:
    """The process's classifier, trained on first use."""
    global _shared
    with _lock:
        if _shared is None:
            classifier = Classifier()
            _ = classifier.pipeline
            _shared = classifier
        return _shared
