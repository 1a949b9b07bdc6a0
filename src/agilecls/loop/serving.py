"""Which version serves: the one exports use, ``agilecls project versions`` marks and the page shows.

A new version becomes the serving version only if it beats the current one on the random audit
sample (both scored on the same audit texts, from their stored predictions), or when the user
chooses it. Until the audit sample is large enough to say (:data:`agilecls.loop.audit.MIN_TEXTS`),
a newer fast version replaces a fast one (the same recipe on more labels), and a full version
waits: a full version that is worse on the audit estimate never serves on its own.

The functions read and write the project's database (:class:`~agilecls.loop.store.ProjectStore`)
and take the project's labels; :class:`agilecls.loop.Project` calls them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..calibration.thresholds import DecisionThreshold
from . import audit, decisions
from .store import ProjectError, ProjectStore


def version_threshold(version: dict) -> DecisionThreshold | None:
    """A version's two-class cut, as saved in its row (None: the most probable class)."""
    state = (version["metrics"].get("rule") or {}).get("threshold")
    return None if state is None else DecisionThreshold.from_dict(state)


def select_version(versions: list[dict], version: int | None = None) -> dict:
    """The record of ``version`` among ``versions`` (None: the newest), or a :class:`ProjectError`."""
    if not versions:
        raise ProjectError("no model version yet; train one first")
    chosen = versions[-1] if version is None else next((v for v in versions if v["id"] == version), None)
    if chosen is None:
        raise ProjectError(f"no version {version}; versions are {', '.join(str(v['id']) for v in versions)}")
    return chosen


def version_proba(store: ProjectStore, version: dict, ids: Sequence[str], n_classes: int) -> np.ndarray:
    """A version's stored probabilities of the texts ``ids``, in that order, [len(ids), n_classes]."""
    stored = store.predictions(version["id"], list(ids))
    return np.array([stored[i][0] for i in ids], dtype=np.float64).reshape(len(ids), n_classes)


def audit_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows of the labelled audit texts."""
    return np.flatnonzero(frame["audit"].to_numpy() & frame["label"].notna().to_numpy())


def audit_classes(frame: pd.DataFrame, labels) -> np.ndarray:
    """Class indices of the labelled audit texts, in :func:`audit_rows` order."""
    return np.array([list(labels).index(v) for v in frame["label"].iloc[audit_rows(frame)]], dtype=int)


def audit_estimate(store: ProjectStore, labels: Sequence[str], version: dict, frame: pd.DataFrame | None = None,
                   positive: str | None = None) -> dict:
    """``version``'s quality on the labelled audit texts (:func:`agilecls.loop.audit.estimate`);
    two classes: the F1 of ``positive`` (default: the class its rule cuts on)."""
    labels = list(labels)
    frame = store.frame() if frame is None else frame
    ids = frame["id"].iloc[audit_rows(frame)].tolist()
    proba = version_proba(store, version, ids, len(labels))
    threshold = version_threshold(version)
    positive = positive or (None if threshold is None else threshold.positive)
    return {**audit.estimate(audit_classes(frame, labels), proba, decisions.decide(proba, labels, threshold), labels,
                             positive), "version": version["id"]}


def current(store: ProjectStore) -> dict | None:
    """``{"version", "reason"}`` of the serving version (None before the first)."""
    return store.meta().get("serving")


def serving_version(store: ProjectStore) -> dict:
    """The serving version's record (the newest version if none was chosen yet)."""
    chosen = current(store)
    return select_version(store.versions(), None if chosen is None else chosen["version"])


def choose(store: ProjectStore, version_id: int, reason: str = "chosen by you") -> dict:
    """Make ``version_id`` the serving version."""
    select_version(store.versions(), version_id)  # refuses an unknown one
    state = {"version": int(version_id), "reason": reason}
    store.set_meta(serving=state, passed_over=None)
    return state


def consider(store: ProjectStore, labels: Sequence[str], version_id: int) -> dict:
    """Decide whether the new version ``version_id`` serves (see the module docstring); returns
    ``{"version", "reason"}`` of the serving version after the decision."""
    versions = store.versions()
    new = select_version(versions, version_id)
    now = current(store)
    if now is None:
        return choose(store, version_id, "the first version")
    try:
        old = select_version(versions, now["version"])
    except ProjectError:
        return choose(store, version_id, "the serving version is gone")
    frame = store.frame()
    cuts = [t for t in (version_threshold(old), version_threshold(new)) if t is not None]
    positive = cuts[0].positive if cuts else None  # both scored on the same class
    new_est = audit_estimate(store, labels, new, frame, positive)
    old_est = audit_estimate(store, labels, old, frame, positive)
    metric = "F1" if new_est["metric"] == "f1" else "macro F1"
    if new_est["enough"]:
        a, b = new_est["value"], old_est["value"]
        wins = a > b or (a == b and new["kind"] == old["kind"])
        verdict = (f"audit {metric} {a:.3f} vs {b:.3f} of version {old['id']} on {new_est['n']} random texts")
        if wins:
            return choose(store, version_id, verdict)
        store.set_meta(passed_over={"version": version_id, "reason": f"not serving: {verdict}"})
        return now
    if new["kind"] == "fast" and old["kind"] == "fast":
        return choose(store, version_id, f"newer fast version; no audit estimate yet ({new_est['reason']})")
    store.set_meta(passed_over={"version": version_id, "reason": (
        f"not serving: it waits for an audit estimate ({new_est['reason']}); choose it to serve it anyway")})
    return now


def with_predictions(store: ProjectStore, labels: Sequence[str], version: dict, out: pd.DataFrame) -> pd.DataFrame:
    """``out`` (rows with an ``id``) with ``version``'s decision (``predicted``, by its rule), every
    label's probability (``p_<label>``), its out-of-scope score and ``version`` added."""
    labels = list(labels)
    ids = out["id"].tolist()
    proba = version_proba(store, version, ids, len(labels))
    out["predicted"] = [labels[j] for j in decisions.decide(proba, labels, version_threshold(version))]
    for j, lab in enumerate(labels):
        out[f"p_{lab}"] = proba[:, j]
    stored = store.predictions(version["id"])
    out["ood_score"] = [stored[i][1] for i in ids]
    out["version"] = version["id"]
    return out
