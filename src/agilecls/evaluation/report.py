"""One self-contained HTML report: a metrics table and the plots, embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io

import numpy as np

from ..atomic import atomic_write_text
from . import plots
from .metrics import classification_metrics, encode_labels, multilabel_metrics


def figure_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def html_page(title: str, body: str, image_width: str) -> str:
    """The one page frame and style of every report, around ``body``."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.5rem; }} table {{ border-collapse: collapse; margin: 0 2rem 1rem 0; display: inline-table;
  vertical-align: top; }}
th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #e5e5e5; font-size: .9rem; }}
th {{ font-weight: 600; color: #444; }}
img {{ max-width: {image_width}; margin: .5rem 1% 0 0; border: 1px solid #eee; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
{body}
</body></html>"""


def build_report(y_true, proba, labels, title: str = "agilecls report", positive_label=None,
                 info: dict | None = None, extra_figures: list | None = None,
                 extra_metrics: dict | None = None, y_pred=None) -> tuple[str, dict]:
    """(HTML text, metrics dict) for predictions ``proba`` [texts, labels] against ``y_true``;
    ``y_pred``: the decisions when a tuned threshold, not the most probable label, makes them."""
    metrics = classification_metrics(y_true, proba, labels, positive_label, y_pred)
    metrics.update(extra_metrics or {})
    figures = [plots.confusion_matrix_figure(y_true, proba, labels, y_pred),
               plots.roc_figure(y_true, proba, labels, positive_label),
               plots.pr_figure(y_true, proba, labels, positive_label),
               plots.reliability_diagram(encode_labels(y_true, labels), proba)] + list(extra_figures or [])
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.4f}</td></tr>" if isinstance(v, float)
                   else f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in metrics.items())
    info_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in (info or {}).items())
    images = "".join(f'<img src="{figure_data_uri(fig)}" alt="plot">' for fig in figures)
    body = (f'<table><caption>Metrics</caption>{rows}</table>\n<table><caption>Run</caption>{info_rows}</table>\n'
            f'<div>{images}</div>')
    page = html_page(title, body, "48%")
    return page, metrics


def write_report(path, *args, **kwargs) -> dict:
    page, metrics = build_report(*args, **kwargs)
    atomic_write_text(path, page)
    return metrics


def per_label_rows(metrics: dict, Y_true, proba, labels, threshold=0.5) -> list[dict]:
    """One row per label: its threshold, texts with it (true and predicted), F1 and ROC-AUC (from
    :func:`~agilecls.evaluation.metrics.multilabel_metrics`' ``f1[label]`` / ``roc_auc[label]``);
    ``threshold`` is one cut for all labels or one per label."""
    cuts = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(labels),))
    Y, pred = np.asarray(Y_true, dtype=int), (np.asarray(proba) >= cuts).astype(int)
    return [{"label": str(label), "threshold": float(cuts[k]), "true": int(Y[:, k].sum()),
             "predicted": int(pred[:, k].sum()), "f1": metrics[f"f1[{label}]"],
             "roc_auc": metrics.get(f"roc_auc[{label}]", float("nan"))}
            for k, label in enumerate(labels)]


def build_multilabel_report(Y_true, proba, labels, title: str = "agilecls multi-label report",
                            info: dict | None = None, threshold=0.5) -> tuple[str, dict]:
    """(HTML text, metrics dict) for independent per-label probabilities ``proba`` [texts, labels]
    against a 0/1 matrix ``Y_true``: the summary metrics, a per-label table and a bar chart of
    per-label F1 and ROC-AUC. ``threshold``: one cut for all labels, or one per label."""
    metrics = multilabel_metrics(Y_true, proba, labels, threshold)
    summary = {k: v for k, v in metrics.items() if "[" not in k}
    rows = per_label_rows(metrics, Y_true, proba, labels, threshold)

    def cell(v) -> str:
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    summary_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in summary.items())
    label_rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    info_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in {**(info or {}), "threshold": threshold if np.ndim(threshold) == 0
                                     else "per label (table above)"}.items())
    image = figure_data_uri(plots.per_label_figure(rows))
    header = "".join(f"<th>{k}</th>" for k in rows[0])
    body = (f'<table><caption>Metrics</caption>{summary_rows}</table>\n'
            f'<table><caption>Per label</caption><tr>{header}</tr>{label_rows}</table>\n'
            f'<table><caption>Run</caption>{info_rows}</table>\n'
            f'<div><img src="{image}" alt="per-label F1 and ROC-AUC"></div>')
    page = html_page(title, body, "70%")
    return page, metrics


def write_multilabel_report(path, *args, **kwargs) -> dict:
    page, metrics = build_multilabel_report(*args, **kwargs)
    atomic_write_text(path, page)
    return metrics
