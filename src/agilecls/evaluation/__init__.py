"""Evaluation: the metric suite (``metrics``), every figure in one style (``plots``) and the
self-contained HTML report (``report``). Works on labels and probabilities only, never on models."""
