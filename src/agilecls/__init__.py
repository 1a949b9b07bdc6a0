"""agilecls: agile text classifiers on small language models."""

from .classifier import AgileClassifier
from .ensemble import EnsembleClassifier
from .datasets import TextDataset, load_dataset
from .lm import BUNDLED, DEFAULT_MODEL, LanguageModel, ModelNotFoundError, load_lm
from .metrics import classification_metrics
from .prompts import PromptTemplate
from .salience import explain

__version__ = "0.1.0"

__all__ = ["AgileClassifier", "BUNDLED", "DEFAULT_MODEL", "EnsembleClassifier", "LanguageModel", "ModelNotFoundError", "PromptTemplate",
           "TextDataset", "classification_metrics", "explain", "load_dataset", "load_lm", "__version__"]
