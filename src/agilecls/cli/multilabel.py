"""What ``agilecls eval`` and ``agilecls train`` do with ``--multilabel``: read the label lists,
check that the classifier is multi-label, print the metrics and the per-label table, write the report.

Labels come as one column of label lists (a JSON list such as ``["race", "violence"]``, or names
joined by ``|`` such as ``race|violence``; blank for none) or, with ``--label-columns a,b,c``, as
one 0/1 column per label.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from ..validation import check_multilabel_y, is_multilabel

MULTILABEL_HELP = ("Multi-label: each text has any number of labels, given in --label-col as a JSON list "
                   "([\"a\", \"b\"]) or joined by | (a|b), blank for none; or use --label-columns.")
LABEL_COLUMNS_HELP = "Multi-label with one 0/1 column per label: the columns, comma-separated (a,b,c)."


def check_matches(clf, multilabel: bool, source: str) -> None:
    """Refuse a single-label classifier on multi-label data and the other way round."""
    if multilabel and not is_multilabel(clf):
        raise ValueError(f"{source} is not a multi-label classifier; train one with --multilabel, or leave "
                         f"--multilabel out")
    if not multilabel and is_multilabel(clf):
        raise ValueError(f"{source} is a multi-label classifier; evaluate it with --multilabel (and the label "
                         f"format: a list column or --label-columns)")


def evaluate_multilabel(clf, data, report: Path, title: str, info: dict) -> dict:
    """Predict ``data`` (a multi-label TextDataset), print the metrics and the per-label F1 table and
    write the HTML report."""
    from ..calibration.multilabel import label_cuts
    from ..evaluation.metrics import format_table
    from ..evaluation.report import per_label_rows, write_multilabel_report

    labels = [str(c) for c in clf.classes_]
    unknown = sorted(set(data.labels) - set(labels))
    if unknown:
        raise ValueError(f"labels {unknown[:10]} in the data are not among the classifier's {labels}")
    Y, _ = check_multilabel_y(list(data.y), labels)
    start = time.perf_counter()
    proba = clf.predict_proba(data.texts)
    seconds = time.perf_counter() - start
    info = {"labels": ", ".join(labels), **info, "texts": len(data), "seconds": f"{seconds:.1f}"}
    cuts = label_cuts(clf, len(labels))
    metrics = write_multilabel_report(report, Y, proba, labels, title=title, info=info, threshold=cuts)
    typer.echo(format_table([{k: v for k, v in metrics.items() if "[" not in k and k != "n"}]))
    typer.echo(format_table(per_label_rows(metrics, Y, proba, labels, cuts)))
    typer.echo(f"{len(data)} texts in {seconds:.1f} s; report written to {report}")
    return metrics
