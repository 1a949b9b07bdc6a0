"""Batch prediction over files of any size: the streaming, resumable local engine
(:func:`predict_file`, in ``local``), the Ray Data engine (:func:`predict_dataset`, in
``ray_engine``) and the chunk writers (``io``). Above the estimators: it loads any saved classifier
with ``load_classifier`` and uses only its public ``details``."""

from __future__ import annotations

__all__ = ["predict_file", "predict_dataset"]


def __getattr__(name: str):
    """``agilecls.batch.predict_file`` / ``predict_dataset``, imported on first use."""
    if name == "predict_file":
        from .local import predict_file

        return predict_file
    if name == "predict_dataset":
        from .ray_engine import predict_dataset

        return predict_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
