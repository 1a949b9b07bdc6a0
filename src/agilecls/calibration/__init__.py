"""Calibrated probabilities and decision thresholds chosen on out-of-fold predictions.

- :mod:`.crossfit`: out-of-fold probabilities of any agilecls classifier (k-fold or a hold-out).
- :mod:`.calibrators`: temperature, Platt (sigmoid) and isotonic calibration, chosen by
  cross-validated log loss, saved as JSON.
- :mod:`.thresholds`: the binary decision threshold for the best F1 or a target precision/recall,
  and an encoder's reject (abstention) threshold by the same rules.
- :mod:`.multilabel`: the same per label of a multi-label classifier (a binary map and a cut each).
- :mod:`.classifier`: :class:`CalibratedClassifier`, which wraps any classifier with the three.
"""

from .calibrators import CALIBRATORS, choose_calibrator, make_calibrator
from .crossfit import CrossFit, out_of_fold
from .thresholds import DecisionThreshold, choose_reject_threshold, fit_threshold

__all__ = ["CALIBRATORS", "CrossFit", "DecisionThreshold", "choose_calibrator", "choose_reject_threshold",
           "fit_threshold",
           "make_calibrator", "out_of_fold"]
