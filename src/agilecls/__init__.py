"""agilecls: agile text classifiers on small language models.

The public names below load on first use, so ``import agilecls`` (and the CLI's start) stays fast
and importing one part never drags in the others.

Imports go at the top of each module. An import inside a function is kept for two reasons only:
start-up time, where the import would load torch, transformers, peft, sentence-transformers,
scikit-learn, matplotlib, uvicorn, small-text or cleanlab (or an agilecls module that does) on a
path that must stay light (``agilecls --help`` and every command's start, ``import agilecls``, the
recipes' registry, reading a saved model's manifest); and optional extras (Ray, the bundled Gemma
weights), imported only by the code that needs them. Nothing else needs a comment: an import inside
a function means one of these. ``tests/test_architecture.py`` counts these imports too when it
checks that the modules form no cycle.

Examples
--------
>>> from agilecls import AgileClassifier, EncoderClassifier, EnsembleClassifier, load_classifier
>>> from agilecls import explain, load_lm, load_dataset
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "AgileClassifier": "agilecls.lm.classifier",
    "EncoderClassifier": "agilecls.encoders.classifier",
    "EnsembleClassifier": "agilecls.ensemble",
    "CalibratedClassifier": "agilecls.calibration.classifier",
    "load_classifier": "agilecls.persistence",
    "ModelFormatError": "agilecls.persistence",
    "explain": "agilecls.salience.explanation",
    "Explanation": "agilecls.salience.explanation",
    "load_lm": "agilecls.lm.loading",
    "LanguageModel": "agilecls.lm.loading",
    "ModelNotFoundError": "agilecls.lm.loading",
    "BUNDLED": "agilecls.lm.loading",
    "DEFAULT_MODEL": "agilecls.lm.loading",
    "PromptTemplate": "agilecls.lm.prompts",
    "TuningConfig": "agilecls.lm.config",
    "SentenceEncoder": "agilecls.encoders.sentence",
    "load_dataset": "agilecls.datasets",
    "TextDataset": "agilecls.datasets",
    "classification_metrics": "agilecls.evaluation.metrics",
    "Project": "agilecls.loop.project",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'agilecls' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for IDEs and type checkers
    from .calibration.classifier import CalibratedClassifier  # noqa: F401
    from .datasets import TextDataset, load_dataset  # noqa: F401
    from .encoders.classifier import EncoderClassifier  # noqa: F401
    from .encoders.sentence import SentenceEncoder  # noqa: F401
    from .ensemble import EnsembleClassifier  # noqa: F401
    from .evaluation.metrics import classification_metrics  # noqa: F401
    from .lm.classifier import AgileClassifier  # noqa: F401
    from .lm.config import TuningConfig  # noqa: F401
    from .lm.loading import BUNDLED, DEFAULT_MODEL, LanguageModel, ModelNotFoundError, load_lm  # noqa: F401
    from .lm.prompts import PromptTemplate  # noqa: F401
    from .loop.project import Project  # noqa: F401
    from .persistence import ModelFormatError, load_classifier  # noqa: F401
    from .salience.explanation import Explanation, explain  # noqa: F401
