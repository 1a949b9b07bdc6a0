"""One confidence binning behind the ECE, the reliability diagram and the loop's reliability points."""

from __future__ import annotations

import numpy as np
import pytest

from agilecls.evaluation.metrics import CONFIDENCE_BINS, confidence_bins, expected_calibration_error
from agilecls.evaluation.plots import reliability_diagram
from agilecls.loop.review import RELIABILITY_BINS, reliability


def reference_ece(y, proba, n_bins):
    """The textbook top-label ECE, bin by bin (Guo et al. 2017), to check the shared binning against."""
    conf, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    total = 0.0
    for lo, hi in zip(np.linspace(0, 1, n_bins + 1)[:-1], np.linspace(0, 1, n_bins + 1)[1:], strict=True):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    return total


@pytest.fixture
def scored():
    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(3) * 0.7, size=500)
    y = np.array([rng.choice(3, p=p) for p in proba])  # calibrated by construction
    return y, proba


@pytest.mark.parametrize("n_bins", [1, 5, 10, 15, 40])
def test_the_ece_is_the_textbook_one_for_any_bin_count(scored, n_bins):
    y, proba = scored
    assert expected_calibration_error(y, proba, n_bins) == pytest.approx(reference_ece(y, proba, n_bins), abs=1e-12)


def test_bins_count_every_row_once_and_a_calibrated_model_has_a_small_gap(scored):
    y, proba = scored
    bins = confidence_bins(y, proba)
    assert CONFIDENCE_BINS == 15 and len(bins.counts) == 15 and bins.counts.sum() == len(y)
    filled = bins.counts > 0
    lows, highs = bins.edges[:-1][filled], bins.edges[1:][filled]
    assert np.all((bins.confidence[filled] > lows) & (bins.confidence[filled] <= highs))
    assert np.isnan(bins.accuracy[~filled]).all()
    assert bins.ece() < 0.08
    overconfident = np.column_stack([proba[:, 0] * 0.1 + 0.9, proba[:, 0] * -0.1 + 0.1, np.zeros(len(y))])
    assert expected_calibration_error(y, overconfident) > 0.4


def test_the_diagram_and_the_loop_read_the_same_bins(scored):
    y, proba = scored
    fig = reliability_diagram(y, proba)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"accuracy (ECE {expected_calibration_error(y, proba):.3f})" in legend
    points = reliability(y, proba)
    bins = confidence_bins(y, proba, RELIABILITY_BINS)
    assert [p["count"] for p in points] == bins.counts[bins.counts > 0].tolist()
    assert [p["accuracy"] for p in points] == pytest.approx(bins.accuracy[bins.counts > 0].tolist())
    assert sum(p["count"] * abs(p["accuracy"] - p["confidence"]) for p in points) / len(y) == pytest.approx(
        expected_calibration_error(y, proba, RELIABILITY_BINS))
