"""One self-contained HTML report: a metrics table and the plots, embedded as PNG data URIs."""

from __future__ import annotations

import base64
import html
import io

from ..atomic import atomic_write_text
from . import plots
from .metrics import classification_metrics, encode_labels


def figure_data_uri(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


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
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.5rem; }} table {{ border-collapse: collapse; margin: 0 2rem 1rem 0; display: inline-table;
  vertical-align: top; }}
th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #e5e5e5; font-size: .9rem; }}
th {{ font-weight: 600; color: #444; }} img {{ max-width: 48%; margin: .5rem 1% 0 0; border: 1px solid #eee; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table><caption>Metrics</caption>{rows}</table>
<table><caption>Run</caption>{info_rows}</table>
<div>{images}</div>
</body></html>"""
    return page, metrics


def write_report(path, *args, **kwargs) -> dict:
    page, metrics = build_report(*args, **kwargs)
    atomic_write_text(path, page)
    return metrics
