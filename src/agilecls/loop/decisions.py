"""What the loop shows and decides: the fast model's probabilities moved to the pool's class shares,
each version's decision rule, and the cold-start blend with the zero-shot scores.

Why: the labelled set's class shares are set by the query strategy (which seeks the rare class)
or by chance, not by the data. A model fitted on them answers as if every class were as common
as it was there. Measured on an imbalanced pool (15-16% positive) before these steps: random
labels gave F1 0.00-0.13 at ROC-AUC 0.91 (every text called the common class), and a balanced,
actively chosen set gave F1 0.72 where 0.81 was reachable. So, on the fast model's cached
embeddings, in well under a second:

1. the out-of-fold probabilities of the labelled rows choose a calibration map that keeps the
   ranking (none or a temperature, by cross-validated log loss: on a few dozen labels a Platt
   map can fit a negative slope and isotonic ties, and either can turn a fair ranking upside
   down, as measured on ETHOS at 32 labels);
2. the pool's class shares are estimated by EM over every text's calibrated probabilities
   (Saerens et al. 2002, :func:`agilecls.calibration.priors.estimate_priors`; labelled texts
   count with their out-of-fold probabilities), never below the share the labels already prove;
3. every probability is moved to those shares (Bayes' rule);
4. for two classes, the decision rule: by default the cut on the positive class that maximises
   the F1 the pool's calibrated probabilities expect (:func:`expected_f1_cut`, no labels needed),
   or the project's precision / recall target, chosen on the labelled texts out of fold; for
   more classes, the most probable class under the pool's shares.

Until the labelled model beats the zero-shot scores, the cold start, the suggestions blend the two
(:func:`choose_blend`), with the blend weight chosen on the labelled texts out of fold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

from ..calibration.calibrators import cross_validated_log_loss, make_calibrator
from ..calibration.priors import estimate_priors, shift_priors
from ..calibration.thresholds import DecisionThreshold, check_rule, expected_f1_cut, fit_threshold
from . import fast

#: The fast model's two-class decision rule unless the project sets one: the cut with the best F1
#: on the labelled texts out of fold, or, while the positive class has fewer than 5 labels, the cut
#: that flags the pool's estimated share of it. Chosen on validation rows (the pool's unlabelled
#: texts) by bench/defaults/loop_rules.py over the expected-F1 cut, whose premise (calibrated
#: probabilities) a logistic head on a few dozen labels does not meet.
DEFAULT_RULE = "f1"
#: EM steps of the pool's class-share estimate: one, the mean calibrated probability. Run to
#: convergence, EM ran off to shares of 0.00-0.66 where the truth was 0.14 (bench/defaults/loop_rules.py).
PRIOR_STEPS = 1
#: The model's estimate of the pool's class shares counts as this many labels beside the random
#: audit texts' own shares. Only the audit is unbiased: the query strategy selects texts near the
#: boundary, so the labelled texts of a class are not like the pool's and no estimate from the
#: model's probabilities is consistent; the audit's weight grows with its size.
PRIOR_PSEUDO_LABELS = 20
#: Weights of the zero-shot scores tried for the cold-start blend, the zero-shot end first (it
#: wins ties: with a handful of labels, a tie is no evidence for the labels).
BLEND_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)
#: Labels per class before the fast model is fitted at all.
MIN_PER_CLASS = 2
#: Labels in the typical class (:func:`blend_ready`) before the model may enter the suggestions:
#: below it the out-of-fold ranking that chooses the blend rests on one or two texts of a class
#: (measured on ETHOS at 8 labels: the model's AUC 0.49 against the zero-shot scores' 0.63).
MIN_PER_CLASS_TO_BLEND = 5
#: Calibration maps that keep the fast model's ranking.
CALIBRATIONS = ("none", "temperature")


@dataclass
class PoolFit:
    """The fast model fitted on the labelled rows and applied to every row of the pool.

    Attributes
    ----------
    labels : list of str
    proba : ndarray of shape (n, classes)
        Calibrated probabilities under the pool's class shares: what is shown and decided.
    raw : ndarray of shape (n, classes)
        Calibrated probabilities under the labelled set's shares (what the query strategies rank).
    ood : ndarray of shape (n,)
        Mahalanobis distance to the labelled classes (higher = further from them).
    oof : ndarray of shape (n_labelled, classes)
        Out-of-fold probabilities of the labelled rows, calibrated, under the pool's shares.
    oof_raw : ndarray of shape (n_labelled, classes)
        The same under the labelled set's shares.
    rows, y_idx : ndarray of int
        The labelled rows and their class indices.
    calibrator : object
        The calibration map (its ``name`` says which).
    train_shares, priors : ndarray of shape (classes,)
        The labelled set's class shares and the pool's estimated ones.
    threshold : DecisionThreshold or None
        The two-class cut (None: the most probable class).
    """

    labels: list[str]
    proba: np.ndarray
    raw: np.ndarray
    ood: np.ndarray
    oof: np.ndarray
    oof_raw: np.ndarray
    rows: np.ndarray
    y_idx: np.ndarray
    calibrator: object
    train_shares: np.ndarray
    priors: np.ndarray
    threshold: DecisionThreshold | None = None

    def decide(self, proba: np.ndarray | None = None) -> np.ndarray:
        """Class indices by this fit's rule (of ``proba``, default: the pool's)."""
        return decide(self.proba if proba is None else proba, self.labels, self.threshold)

    def rule(self) -> dict:
        """The decision rule as JSON: positive class, cut and how it was chosen, the pool's shares."""
        return rule_state(self.labels, self.priors, self.threshold, self.calibrator.name)


def can_fit(y_idx: np.ndarray) -> bool:
    """Whether at least two classes have :data:`MIN_PER_CLASS` labels each."""
    return int((np.bincount(y_idx) >= MIN_PER_CLASS).sum()) >= 2 if len(y_idx) else False


def positive_class(labels, priors: np.ndarray, chosen: str | None = None) -> str:
    """The class a two-class rule cuts on: the project's choice, else the rarer in the pool."""
    return chosen if chosen else labels[int(np.argmin(priors))]


def decide(proba: np.ndarray, labels, threshold: DecisionThreshold | None) -> np.ndarray:
    """Class indices of ``proba`` by ``threshold`` (None: the most probable class)."""
    if threshold is None:
        return np.asarray(proba).argmax(axis=1)
    pos = list(labels).index(threshold.positive)
    return np.where(np.asarray(proba)[:, pos] >= threshold.threshold, pos, 1 - pos)


def expected_cut(p_pos: np.ndarray, positive: str) -> DecisionThreshold:
    """The expected-F1 cut of ``p_pos`` with the precision, recall and F1 it expects there."""
    cut = expected_f1_cut(p_pos)
    flagged = p_pos >= cut
    hits, total = float(p_pos[flagged].sum()), float(p_pos.sum())
    precision = hits / max(int(flagged.sum()), 1)
    recall = hits / total if total > 0 else float("nan")
    f1 = 2 * hits / (int(flagged.sum()) + total) if total > 0 else float("nan")
    return DecisionThreshold("expected_f1", positive, float(cut), precision, recall, f1)


def share_cut(p_pos: np.ndarray, positive: str) -> DecisionThreshold:
    """The cut that flags the pool's estimated share of ``positive`` (the mean of its probabilities
    under the pool's shares): the most probable texts first. It depends on the ranking and the
    share only, not on how well the probabilities are scaled."""
    share = float(np.mean(p_pos))
    cut = float(np.quantile(p_pos, 1 - share)) if 0 < share < 1 else 0.5
    return DecisionThreshold("pool_share", positive, cut)


def fit_rule(pool_proba: np.ndarray, oof: np.ndarray, y_idx: np.ndarray, labels, rule: str | float,
             positive: str) -> DecisionThreshold | None:
    """A two-class cut by ``rule``: "pool_share" or "expected_f1" on the pool's probabilities (no
    labels needed), a number as given, or a precision / recall target (or "f1") on the labelled
    rows out of fold ("f1" falls back to "pool_share" while the positive class has fewer than
    :data:`MIN_PER_CLASS_TO_BLEND` labels). None for more than two classes."""
    if len(labels) != 2:
        return None
    pos = list(labels).index(positive)
    if rule == "pool_share" or (rule == "f1" and (y_idx == pos).sum() < MIN_PER_CLASS_TO_BLEND):
        # with a handful of positive labels the best labelled cut is a coin toss (measured: F1 0 on
        # ETHOS at 8 random labels); the pool's estimated share of the class needs no more labels
        return share_cut(pool_proba[:, pos], positive)
    rule = check_rule(rule)
    if rule == "expected_f1":
        return expected_cut(pool_proba[:, pos], positive)
    if isinstance(rule, float):
        return DecisionThreshold("fixed", positive, rule)
    return fit_threshold(oof[:, pos], y_idx == pos, rule, positive)


def rule_state(labels, priors, threshold: DecisionThreshold | None, calibration: str) -> dict:
    """A version's decision rule as saved in its row: the pool's shares, the map, the cut, in words."""
    return {"priors": dict(zip(labels, map(float, priors), strict=False)), "calibration": calibration,
            "threshold": None if threshold is None else threshold.to_dict(),
            "describe": ("the most probable class under the pool's class shares" if threshold is None
                         else threshold.describe().replace("out of fold", "expected on the pool"
                                                           if threshold.rule == "expected_f1" else "out of fold"))}


def pool_priors(population: np.ndarray, train_shares: np.ndarray, counts: np.ndarray, n: int,
                steps: int = PRIOR_STEPS, audit_counts: np.ndarray | None = None) -> np.ndarray:
    """The pool's class shares: ``steps`` steps of Saerens' EM over the calibrated probabilities
    of ``population`` (under ``train_shares``; 1 step: the mean probability), then pooled with the
    random audit texts' class counts (the model's estimate counting as :data:`PRIOR_PSEUDO_LABELS`
    labels), each share at least what the ``counts`` of labels already prove among ``n`` texts."""
    priors, _ = estimate_priors(population, train_shares, max_iter=steps)
    if audit_counts is not None and audit_counts.sum() > 0:
        priors = (PRIOR_PSEUDO_LABELS * priors + audit_counts) / (PRIOR_PSEUDO_LABELS + audit_counts.sum())
    priors = np.maximum(priors, counts / max(n, 1))
    return priors / priors.sum()


def fit_pool(emb: np.ndarray, rows: np.ndarray, y_idx: np.ndarray, labels, rule=DEFAULT_RULE,
             positive: str | None = None, seed: int = 0, prior_steps: int = PRIOR_STEPS,
             audit_idx: np.ndarray | None = None) -> PoolFit:
    """The fast model on ``emb[rows]`` (class indices ``y_idx``) applied to every row of ``emb``.

    Parameters
    ----------
    emb : ndarray of shape (n, d)
        Sentence embeddings of every text.
    rows, y_idx : ndarray of int
        The training rows and their class indices (:func:`can_fit` must hold).
    labels : list of str
    rule : str or float, default="f1"
        The two-class decision rule (:func:`fit_rule`).
    positive : str or None, default=None
        The class the rule cuts on (None: the rarer one in the pool estimate).
    seed : int, default=0
    prior_steps : int, default=1
        EM steps of the pool's class-share estimate (:func:`pool_priors`).
    audit_idx : ndarray of int or None, default=None
        Class indices of the labelled random audit texts, pooled into the class-share estimate.

    Returns
    -------
    PoolFit
    """
    labels = list(labels)
    n_classes = len(labels)
    present = np.flatnonzero(np.bincount(y_idx, minlength=n_classes) > 0)
    local = np.searchsorted(present, y_idx)  # classes with labels only: the others get 0
    oof_raw = _normalised(fast.out_of_fold(emb[rows], y_idx, n_classes, seed=seed)[:, present])
    losses = {name: cross_validated_log_loss(name, oof_raw, local, random_state=seed) for name in CALIBRATIONS}
    calibrator = make_calibrator(min(CALIBRATIONS, key=lambda name: (round(losses[name], 6), name != "none")))
    calibrator.fit(oof_raw, local)
    pool_raw, ood = fast.pool_scores(emb, rows, y_idx, n_classes, seed)
    cal, oof = _normalised(calibrator.transform(pool_raw[:, present])), _normalised(calibrator.transform(oof_raw))
    counts = np.bincount(local, minlength=len(present))
    shares = counts / len(local)
    population_proba = cal.copy()
    population_proba[rows] = oof  # a labelled row by a model that never saw it
    audit_counts = None if audit_idx is None else np.bincount(audit_idx, minlength=n_classes)[present]
    priors = pool_priors(population_proba, shares, counts, len(emb), prior_steps, audit_counts)
    if n_classes > 2 and not blend_ready(np.bincount(y_idx, minlength=n_classes)):
        # a class with one or two labels has a tiny labelled share, and p · share_pool / share_labelled
        # then makes it win everywhere (CLINC150, 20 intents + oos, 32-64 labels: macro F1 of the
        # shifted decisions 0.004-0.58 against 0.21-0.70 unshifted): keep the labelled shares
        priors = shares.copy()
    full = lambda part: _widen(part, present, n_classes)  # noqa: E731
    all_priors = full(priors[None, :])[0]
    fit = PoolFit(labels, full(shift_priors(cal, shares, priors)), full(cal), ood,
                  full(shift_priors(oof, shares, priors)), full(oof), np.asarray(rows), np.asarray(y_idx), calibrator,
                  full(shares[None, :])[0], all_priors)
    if n_classes == 2 and len(present) == 2:
        chosen = positive_class(labels, all_priors, positive)
        scored = full(shift_priors(population_proba, shares, priors))
        fit.threshold = fit_rule(scored, fit.oof, y_idx, labels, rule, chosen)
    return fit


def _normalised(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, None)
    return p / p.sum(axis=1, keepdims=True)


def _widen(part: np.ndarray, present: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(part), n_classes))
    out[:, present] = part
    return out


def blend(model: np.ndarray, zero_shot: np.ndarray, weight: float) -> np.ndarray:
    """The weighted geometric mean of two probability matrices (``weight`` on ``zero_shot``),
    rows renormalised: 1 gives the zero-shot scores, 0 the model's."""
    if weight >= 1:
        return np.asarray(zero_shot, dtype=np.float64)
    if weight <= 0:
        return np.asarray(model, dtype=np.float64)
    logp = weight * np.log(np.clip(zero_shot, 1e-9, 1)) + (1 - weight) * np.log(np.clip(model, 1e-9, 1))
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(axis=1, keepdims=True)


def ranking_score(y_idx: np.ndarray, proba: np.ndarray) -> float:
    """ROC-AUC (two classes) or macro one-vs-rest ROC-AUC over the classes present in ``y_idx``."""
    present = np.unique(y_idx)
    if len(present) < 2:
        return float("nan")
    if len(present) == 2:
        return float(roc_auc_score(y_idx == present[1], proba[:, present[1]] - proba[:, present[0]]))
    return float(np.mean([roc_auc_score(y_idx == c, proba[:, c]) for c in present]))


def blend_ready(counts: np.ndarray) -> bool:
    """Whether the labels may enter the suggestions: every class has labels (a class without any
    gets probability 0 from the model), two at least, and the typical class (the smallest of two)
    :data:`MIN_PER_CLASS_TO_BLEND`."""
    counts = np.asarray(counts)
    typical = counts.min() if len(counts) == 2 else np.median(counts)
    return bool(counts.min() >= MIN_PER_CLASS and typical >= MIN_PER_CLASS_TO_BLEND)


def choose_blend(oof: np.ndarray, zero_shot: np.ndarray, y_idx: np.ndarray) -> tuple[float, dict]:
    """The zero-shot weight of the blend whose out-of-fold ranking of the labelled rows is best
    (ties go to more zero-shot), with every weight's score; the zero-shot scores alone until
    :func:`blend_ready`."""
    counts = np.bincount(y_idx, minlength=oof.shape[1])
    if not blend_ready(counts):
        return 1.0, {}
    scores = {w: ranking_score(y_idx, blend(oof, zero_shot, w)) for w in BLEND_WEIGHTS}
    valid = {w: s for w, s in scores.items() if s == s}
    if not valid:
        return 1.0, scores
    best = max(valid.values())
    return next(w for w in BLEND_WEIGHTS if valid.get(w, -1) >= best - 1e-12), scores


def source_name(weight: float) -> str:
    """What the suggestions come from, in words."""
    if weight >= 1:
        return "zero-shot scores"
    if weight <= 0:
        return "the model trained on your labels"
    return f"a blend of zero-shot scores ({weight:.0%}) and the model trained on your labels"
