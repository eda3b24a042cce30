"""How well does the support desk's classifier sort consumers' queries it has never seen?

Trains the shipped model (`cloud/support/classifier.py`) on the dataset's `train` rows and
measures it on the held-out `test` rows: macro-F1 (the issue's target: ≥ 0.90), accuracy, F1
per category and per language, and how the automatic answers fare — of the test queries the
desk would answer by itself (a safe category, predicted with at least the confidence the desk
requires), how many were right. Then, as a check on luck, the same model on fresh stratified
splits of the whole dataset (k-fold, a few seeds). Prints JSON lines, then the confusion
matrix as a table (rows: the true category; columns: the predicted one).

Run: python bench/support_classifier.py [--folds 4] [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold

from cloud.services.support import AUTOMATIC, AUTOMATIC_CONFIDENCE
from cloud.support.classifier import CATEGORIES, build_pipeline, load_examples


def emit(figure: str, value: float, unit: str = "", **extra: object) -> None:
    line = {"bench": "support_classifier", "figure": figure, "value": round(value, 4)}
    print(json.dumps({**line, "unit": unit, **extra}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    examples, version = load_examples()
    train = [e for e in examples if e.split == "train"]
    test = [e for e in examples if e.split == "test"]
    started = time.perf_counter()
    model = build_pipeline().fit([e.text for e in train], [e.category for e in train])
    emit("training_s", time.perf_counter() - started, "s", train=len(train))
    truth = [e.category for e in test]
    probabilities = model.predict_proba([e.text for e in test])
    predicted = [str(model.classes_[p.argmax()]) for p in probabilities]
    emit("macro_f1", f1_score(truth, predicted, average="macro"), target=">= 0.90", model=version)
    emit("accuracy", accuracy_score(truth, predicted), test=len(test))
    for category, score in zip(
        CATEGORIES, f1_score(truth, predicted, labels=list(CATEGORIES), average=None), strict=True
    ):
        emit("f1", score, category=category)
    for language in sorted({e.language for e in test}):
        rows = [i for i, e in enumerate(test) if e.language == language]
        emit(
            "macro_f1_by_language",
            f1_score([truth[i] for i in rows], [predicted[i] for i in rows], average="macro"),
            language=language,
            test=len(rows),
        )
    sure = [
        i
        for i, p in enumerate(probabilities)
        if predicted[i] in AUTOMATIC and p.max() >= AUTOMATIC_CONFIDENCE
    ]
    right = sum(truth[i] == predicted[i] for i in sure)
    emit(
        "automatic_answers_right",
        right / len(sure) if sure else 0.0,
        "share",
        answered=len(sure),
        wrong=len(sure) - right,
        confidence_at_least=AUTOMATIC_CONFIDENCE,
    )
    texts, labels = [e.text for e in examples], [e.category for e in examples]
    strata = [f"{e.category}/{e.language}" for e in examples]
    scores = []
    for seed in range(args.seeds):
        folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=seed)
        for fit_rows, held_rows in folds.split(texts, strata):
            fold = build_pipeline().fit([texts[i] for i in fit_rows], [labels[i] for i in fit_rows])
            guess = fold.predict([texts[i] for i in held_rows])
            scores.append(f1_score([labels[i] for i in held_rows], guess, average="macro"))
    emit(
        "resplit_macro_f1_mean",
        statistics.mean(scores),
        splits=len(scores),
        low=round(min(scores), 4),
        high=round(max(scores), 4),
        stdev=round(statistics.stdev(scores), 4) if len(scores) > 1 else 0.0,
    )
    matrix = confusion_matrix(truth, predicted, labels=list(CATEGORIES))
    short = [c[:9] for c in CATEGORIES]
    print("\nconfusion matrix (rows: true, columns: predicted)")
    print(f"{'':>14}" + "".join(f"{name:>10}" for name in short))
    for category, row in zip(CATEGORIES, matrix, strict=True):
        print(f"{category:>14}" + "".join(f"{n:>10}" for n in row))


if __name__ == "__main__":
    main()
