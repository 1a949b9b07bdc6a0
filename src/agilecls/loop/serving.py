"""Which version serves: the one exports use, ``agilecls project versions`` marks and the page shows.

A new version becomes the serving version only if it beats the current one on the random audit
sample (both scored on the same audit texts, from their stored predictions), or when the user
chooses it. Until the audit sample is large enough to say (:data:`agilecls.loop.audit.MIN_TEXTS`),
a newer fast version replaces a fast one (the same recipe on more labels), and a full version
waits: a full version that is worse on the audit estimate never serves on its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..calibration.thresholds import DecisionThreshold
from . import audit, decisions
from .store import ProjectError


def version_threshold(version: dict) -> DecisionThreshold | None:
    """A version's two-class cut, as saved in its row (None: the most probable class)."""
    state = (version["metrics"].get("rule") or {}).get("threshold")
    return None if state is None else DecisionThreshold.from_dict(state)


def version_proba(project, version: dict, ids) -> np.ndarray:
    """A version's stored probabilities of the texts ``ids``, in that order."""
    stored = project.store.predictions(version["id"], list(ids))
    return np.array([stored[i][0] for i in ids], dtype=np.float64).reshape(len(ids), len(project.labels))


def audit_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows of the labelled audit texts."""
    return np.flatnonzero(frame["audit"].to_numpy() & frame["label"].notna().to_numpy())


def audit_classes(frame: pd.DataFrame, labels) -> np.ndarray:
    """Class indices of the labelled audit texts, in :func:`audit_rows` order."""
    return np.array([list(labels).index(v) for v in frame["label"].iloc[audit_rows(frame)]], dtype=int)


def audit_estimate(project, version: dict, frame: pd.DataFrame | None = None, positive: str | None = None) -> dict:
    """``version``'s quality on the labelled audit texts (:func:`agilecls.loop.audit.estimate`);
    two classes: the F1 of ``positive`` (default: the class its rule cuts on)."""
    frame = project.store.frame() if frame is None else frame
    rows = audit_rows(frame)
    ids = frame["id"].iloc[rows].tolist()
    y_idx = audit_classes(frame, project.labels)
    proba = version_proba(project, version, ids)
    threshold = version_threshold(version)
    positive = positive or (None if threshold is None else threshold.positive)
    return {**audit.estimate(y_idx, proba, decisions.decide(proba, project.labels, threshold), project.labels,
                             positive), "version": version["id"]}


def current(project) -> dict | None:
    """``{"version", "reason"}`` of the serving version (None before the first)."""
    return project.store.meta().get("serving")


def serving_version(project) -> dict:
    """The serving version's record (the newest version if none was chosen yet)."""
    chosen = current(project)
    return project.version(None if chosen is None else chosen["version"])


def choose(project, version_id: int, reason: str = "chosen by you") -> dict:
    """Make ``version_id`` the serving version."""
    project.version(version_id)  # refuses an unknown one
    state = {"version": int(version_id), "reason": reason}
    project.store.set_meta(serving=state, passed_over=None)
    return state


def consider(project, version_id: int) -> dict:
    """Decide whether the new version ``version_id`` serves (see the module docstring); returns
    ``{"version", "reason"}`` of the serving version after the decision."""
    new = project.version(version_id)
    now = current(project)
    if now is None:
        return choose(project, version_id, "the first version")
    try:
        old = project.version(now["version"])
    except ProjectError:
        return choose(project, version_id, "the serving version is gone")
    frame = project.store.frame()
    cuts = [t for t in (version_threshold(old), version_threshold(new)) if t is not None]
    positive = cuts[0].positive if cuts else None  # both scored on the same class
    new_est, old_est = audit_estimate(project, new, frame, positive), audit_estimate(project, old, frame, positive)
    metric = "F1" if new_est["metric"] == "f1" else "macro F1"
    if new_est["enough"]:
        a, b = new_est["value"], old_est["value"]
        wins = a > b or (a == b and new["kind"] == old["kind"])
        verdict = (f"audit {metric} {a:.3f} vs {b:.3f} of version {old['id']} on {new_est['n']} random texts")
        if wins:
            return choose(project, version_id, verdict)
        project.store.set_meta(passed_over={"version": version_id, "reason": f"not serving: {verdict}"})
        return now
    if new["kind"] == "fast" and old["kind"] == "fast":
        return choose(project, version_id, f"newer fast version; no audit estimate yet ({new_est['reason']})")
    project.store.set_meta(passed_over={"version": version_id, "reason": (
        f"not serving: it waits for an audit estimate ({new_est['reason']}); choose it to serve it anyway")})
    return now
