"""The loop's decisions on real computations over synthetic embeddings: the pool's class shares
when the labelled set's differ, the decision rule on a rare class, the cold-start blend, the audit
sample's draw and interval, and which version serves."""

from __future__ import annotations

import numpy as np
import pytest

from agilecls.loop import audit, decisions


def two_gaussians(n: int, share: float, seed: int, dim: int = 16, gap: float = 1.2):
    """``n`` points, ``share`` of them positive (class 1), classes ``gap`` apart along one axis."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < share).astype(int)
    x = rng.normal(0, 1, (n, dim))
    x[:, 0] += gap * y
    return x / 3, y


def balanced_rows(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.choice(np.flatnonzero(y == 0), per_class, replace=False),
                 rng.choice(np.flatnonzero(y == 1), per_class, replace=False)]


def test_probabilities_move_to_the_pool_class_shares_not_the_labelled_ones():
    """The labelled set is balanced (as the query strategy makes it), the pool 15% positive, and
    40 random audit texts are labelled: over draws, the corrected probabilities average to the
    pool's share; the uncorrected ones stay near the labelled set's half."""
    x, y = two_gaussians(2000, 0.15, seed=0, gap=2.0)
    corrected, raw, truth = [], [], []
    for seed in range(8):
        rows = balanced_rows(y, 40, seed)
        rest = np.setdiff1d(np.arange(len(y)), rows)
        audited = np.random.default_rng(100 + seed).choice(rest, 40, replace=False)
        fit = decisions.fit_pool(x, rows, y[rows], ["ok", "toxic"], seed=seed, audit_idx=y[audited])
        assert fit.train_shares[1] == pytest.approx(0.5)
        assert fit.threshold is not None and fit.threshold.positive == "toxic"  # the rarer class in the pool
        unlabelled = np.setdiff1d(rest, audited)
        corrected.append(fit.proba[unlabelled, 1].mean())
        raw.append(fit.raw[unlabelled, 1].mean())
        truth.append(y[unlabelled].mean())
    assert abs(np.mean(corrected) - np.mean(truth)) < 0.04
    assert np.mean(raw) - np.mean(truth) > 0.1
    without_audit = decisions.fit_pool(x, rows, y[rows], ["ok", "toxic"])  # the model's own estimate alone
    assert fit.priors[1] < without_audit.priors[1] < 0.5


def test_random_labels_on_a_rare_class_still_flag_it():
    """About 15% positive labels drawn at random: the most probable class alone would call almost
    everything negative; the rule's cut finds the rare class (F1 well above 0)."""
    from sklearn.metrics import f1_score

    x, y = two_gaussians(2000, 0.15, seed=1, gap=1.5)
    rows = np.random.default_rng(1).choice(len(y), 64, replace=False)
    assert 2 <= y[rows].sum() <= 20
    fit = decisions.fit_pool(x, rows, y[rows], ["ok", "toxic"])
    test = np.setdiff1d(np.arange(len(y)), rows)
    argmax_f1 = f1_score(y[test], fit.raw[test].argmax(axis=1))
    rule_f1 = f1_score(y[test], fit.decide()[test])
    assert rule_f1 > 0.4 and rule_f1 > argmax_f1 + 0.1


def test_the_blend_keeps_zero_shot_scores_until_labels_beat_them():
    x, y = two_gaussians(600, 0.3, seed=2, gap=2.0)
    good_zero_shot = np.c_[1 - (y * 0.6 + 0.2), y * 0.6 + 0.2]  # ranks the pool perfectly
    noise = np.random.default_rng(0).dirichlet([1, 1], size=len(y))
    rows = balanced_rows(y, 3, 0)  # fewer than MIN_PER_CLASS_TO_BLEND a class: zero-shot alone
    fit = decisions.fit_pool(x, rows, y[rows], ["a", "b"])
    assert decisions.choose_blend(fit.oof, good_zero_shot[rows], y[rows])[0] == 1.0
    rows = balanced_rows(y, 40, 0)
    fit = decisions.fit_pool(x, rows, y[rows], ["a", "b"])
    weight, scores = decisions.choose_blend(fit.oof, noise[rows], y[rows])
    assert weight < 0.5 and scores[0.0] > scores[1.0]  # noise as zero-shot scores: the labels win
    assert decisions.choose_blend(fit.oof, good_zero_shot[rows], y[rows])[0] > 0  # a perfect prior stays in
    blended = decisions.blend(fit.proba, good_zero_shot, 0.5)
    np.testing.assert_allclose(blended.sum(axis=1), 1)
    np.testing.assert_allclose(decisions.blend(fit.proba, good_zero_shot, 1.0), good_zero_shot)


def test_audit_reserve_is_a_fixed_uniform_draw_and_quota_is_exact():
    ids = [f"t{i}" for i in range(20_000)]
    reserve = audit.in_reserve(ids, "salt", 0.2)
    assert abs(reserve.mean() - 0.2) < 0.01
    np.testing.assert_array_equal(reserve, audit.in_reserve(ids, "salt", 0.2))  # fixed by id and salt
    assert (reserve != audit.in_reserve(ids, "other", 0.2)).any()
    assert not audit.in_reserve(ids, "salt", 0).any()
    shown, total = 0, 0
    for k in (8, 8, 3, 16, 5, 8):
        total += audit.quota(k, 0.2, shown)
        shown += k
    assert total == int(shown * 0.2)


def test_audit_interval_covers_the_pool_value_and_says_when_it_is_too_small():
    """Draws of 40 audit texts from a pool with a known F1: the 95% interval covers it in most
    draws; an audit without enough positives gives no number, and one with no true positive
    still gives an interval, not a single point at 0."""
    rng = np.random.default_rng(0)
    n_pool = 20_000
    y = (rng.random(n_pool) < 0.3).astype(int)
    pred = np.where(rng.random(n_pool) < 0.8, y, 1 - y)
    proba = np.c_[1 - pred * 0.7, pred * 0.7]
    tp, fp, fn = ((y == 1) & (pred == 1)).sum(), ((y == 0) & (pred == 1)).sum(), ((y == 1) & (pred == 0)).sum()
    truth = 2 * tp / (2 * tp + fp + fn)
    covered = 0
    for draw in range(100):
        rows = rng.choice(n_pool, 40, replace=False)
        est = audit.estimate(y[rows], proba[rows], pred[rows], ["ok", "toxic"], "toxic", seed=draw)
        assert est["enough"] and est["low"] <= est["value"] <= est["high"]
        covered += est["low"] <= truth <= est["high"]
    assert covered >= 88
    few = audit.estimate(np.array([0] * 10 + [1] * 2), np.full((12, 2), 0.5), np.zeros(12, int), ["ok", "toxic"],
                         "toxic")
    assert not few["enough"] and few["value"] is None and "needs 3" in few["reason"]
    small = audit.estimate(np.zeros(5, int), np.full((5, 2), 0.5), np.zeros(5, int), ["ok", "toxic"], "toxic")
    assert not small["enough"] and "label 7 more" in small["reason"]
    none_found = audit.estimate(np.array([0] * 12 + [1] * 4), np.full((16, 2), 0.5), np.zeros(16, int),
                                ["ok", "toxic"], "toxic")
    assert none_found["value"] == 0 and none_found["high"] > 0.1 and none_found["more_for_target"] > 0
