"""Class priors of the texts a classifier will label, estimated without labels, and probabilities
moved to them.

A labelling project rarely labels texts in the proportions they arrive in: a few examples per class
are labelled on purpose, and active learning picks texts near the boundary. A classifier trained
and calibrated on those rows then answers as if every class were as common as it was there. If the
class shares of the unlabelled texts are known, Bayes' rule moves each probability to them:
p'(c | x) ∝ p(c | x) · π'(c) / π(c). They are not known, but the EM procedure of Saerens, Latinne
and Decaestecker (2002, "Adjusting the outputs of a classifier to new a priori probabilities")
estimates them from the classifier's own calibrated probabilities on unlabelled texts: move the
probabilities to the current estimate, average them into the next estimate, repeat.
"""

from __future__ import annotations

import numpy as np


def shift_priors(proba: np.ndarray, train_priors: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """``proba`` (rows of class probabilities under ``train_priors``) moved to ``priors`` by Bayes'
    rule: each column scaled by ``priors / train_priors``, rows renormalised."""
    weighted = np.asarray(proba, dtype=np.float64) * (np.asarray(priors) / np.asarray(train_priors))
    return weighted / weighted.sum(axis=1, keepdims=True)


def estimate_priors(proba: np.ndarray, train_priors: np.ndarray, max_iter: int = 1000,
                    tol: float = 1e-8) -> tuple[np.ndarray, int]:
    """The class priors of the rows of ``proba`` by EM (Saerens et al., 2002).

    Parameters
    ----------
    proba : ndarray of shape (n_rows, n_classes)
        Calibrated probabilities of unlabelled rows, under the training class shares.
    train_priors : ndarray of shape (n_classes,)
        The class shares the probabilities were fitted under (those of the labelled rows).
    max_iter : int, default=1000
    tol : float, default=1e-8
        Stop when no prior moves by more than this.

    Returns
    -------
    priors : ndarray of shape (n_classes,)
        The estimate (sums to 1).
    n_iter : int
        The EM steps taken.
    """
    proba = np.asarray(proba, dtype=np.float64)
    train_priors = np.asarray(train_priors, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(train_priors) or len(proba) == 0:
        raise ValueError("estimate_priors needs probabilities of at least one row for every class")
    priors = train_priors.copy()
    for step in range(1, max_iter + 1):
        new = shift_priors(proba, train_priors, priors).mean(axis=0)
        if np.abs(new - priors).max() < tol:
            return new, step
        priors = new
    return priors, max_iter
