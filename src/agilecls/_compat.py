"""scikit-learn's private parts that agilecls builds on, imported in this one place.

The estimators declare their parameters with scikit-learn's own constraint objects (so
``set_params`` and ``fit`` validate them as scikit-learn's estimators do) and the ensemble keeps its
members as scikit-learn compositions do. Those names live in private modules
(``sklearn.utils._param_validation``, ``_BaseComposition``) that may move between releases: when one
does, this module is the only one to change.
"""

from __future__ import annotations

from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metaestimators import _BaseComposition as BaseComposition

__all__ = ["BaseComposition", "HasMethods", "Interval", "StrOptions"]
