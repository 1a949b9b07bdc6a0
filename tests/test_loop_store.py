"""The labelling project's store, imports, query strategies and out-of-fold scores, on real SQLite
and real scikit-learn / small-text / cleanlab computations (no encoder needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from agilecls.loop import fast, strategies
from agilecls.loop.store import ProjectError, ProjectStore
from agilecls.loop.transfer import import_rows
from agilecls.validation import DatasetError


@pytest.fixture
def store(tmp_path):
    store = ProjectStore(tmp_path / "proj")
    store.create({"labels": ["ham", "spam"], "instructions": "", "descriptions": {}, "encoder": "minilm"})
    return store


def write_csv(path, rows, columns=("id", "text", "label", "source")):
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_import_label_undo_and_extra_columns(store, tmp_path):
    src = write_csv(tmp_path / "in.csv", [["a", "buy now", "spam", "mail"], ["b", "see you at 5", "", "sms"],
                                          ["c", "cheap pills", None, "mail"]])
    assert import_rows(store, src, id_col="id", label_col="label") == {"imported": 3, "labelled": 1}
    frame = store.frame()
    assert frame["id"].tolist() == ["a", "b", "c"]
    assert frame["label"].tolist()[0] == "spam" and frame["label"].isna().tolist()[1:] == [True, True]
    assert frame["extra"].tolist()[1] == {"source": "sms"}
    store.set_label("b", "ham", "ann")
    store.set_label("c", "spam", "ann")
    store.set_label("c", "ham", "bob")
    assert store.label_counts() == {"ham": 2, "spam": 1}
    undone = store.undo("ann")  # ann's newest change (c -> spam) was since overwritten by bob: his stays
    assert (undone["id"], undone["superseded"]) == ("c", True)
    assert store.frame().set_index("id")["label"].to_dict() == {"a": "spam", "b": "ham", "c": "ham"}
    assert store.undo("ann")["id"] == "b"
    assert store.frame().set_index("id")["label"].to_dict() == {"a": "spam", "b": None, "c": "ham"}
    assert (store.undo("bob")["label"], store.frame().set_index("id").loc["c", "label"]) == ("spam", "spam")
    assert store.undo("ann") is None  # imported labels are not undone
    assert store.frame()["label"].tolist()[0] == "spam"


def test_bad_imports_leave_the_project_unchanged(store, tmp_path):
    import_rows(store, write_csv(tmp_path / "ok.csv", [["a", "hello", "ham", "x"]]), id_col="id", label_col="label")
    before = store.frame().to_dict("list")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(b"\x00\xff\xfe\x00" * 50)
    cases = {
        "missing column": (write_csv(tmp_path / "m.csv", [["z", "hi", "ham", "x"]]), {"text_col": "body"}),
        "empty file": (tmp_path / "empty.csv", {}),
        "binary file": (tmp_path / "binary.csv", {}),
        "duplicate ids in the file": (write_csv(tmp_path / "d.csv", [["x", "one", "", ""], ["x", "two", "", ""]]), {}),
        "id already in the project": (write_csv(tmp_path / "p.csv", [["y", "one", "", ""], ["a", "two", "", ""]]), {}),
        "unknown label": (write_csv(tmp_path / "u.csv", [["q", "one", "eggs", ""]]), {}),
        "blank text": (write_csv(tmp_path / "t.csv", [["r", " ", "", ""]]), {}),
    }
    for name, (path, extra) in cases.items():
        with pytest.raises((ProjectError, DatasetError)) as err:
            import_rows(store, path, **{"id_col": "id", "label_col": "label", **extra})
        assert "\n" not in str(err.value), name
        assert store.frame().to_dict("list") == before, name


def test_jobs_one_at_a_time(store):
    job = store.start_job("full")
    with pytest.raises(ProjectError, match="still running"):
        store.start_job("full")
    store.update_job(job, status="done", progress={"stage": "done"})
    assert store.jobs()[0]["progress"] == {"stage": "done"}
    store.start_job("fast")


def test_leases_keep_texts_from_other_clients(store, tmp_path):
    import_rows(store, write_csv(tmp_path / "in.csv", [[str(i), f"text {i}", "", ""] for i in range(4)]),
                id_col="id", label_col="label")
    store.lease(["0", "1"], "tab-1")
    store.skip("3")
    assert store.unavailable("tab-2") == {"0", "1", "3"}
    assert store.unavailable("tab-1") == {"3"}
    store.set_label("3", "ham")  # labelling a skipped text takes it off the skipped list
    assert store.unavailable("tab-1") == set()


def blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[8.0, 0, 0], [0, 8.0, 0], [0, 0, 8.0]])
    emb = np.concatenate([c + rng.normal(0, 0.5, (30, 3)) for c in centres])
    return emb, np.repeat(np.arange(3), 30)


def test_strategies_pick_what_they_promise():
    emb, y = blobs()
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=len(emb))
    candidates = np.arange(0, len(emb), 2)
    pool = strategies.PoolScores(emb, candidates, proba, ood=np.linalg.norm(emb, axis=1))
    top = np.sort(proba, axis=1)
    by_margin = candidates[np.argsort(top[candidates, -1] - top[candidates, -2])][:5]
    assert set(strategies.select("breaking_ties", pool, 5)) == set(by_margin)
    entropy = -(proba * np.log(proba)).sum(axis=1)
    assert set(strategies.select("entropy", pool, 5)) == set(candidates[np.argsort(-entropy[candidates])][:5])
    for name in strategies.STRATEGIES:
        chosen = strategies.select(name, pool, 6, seed=3)
        assert len(set(chosen)) == 6 and set(chosen) <= set(candidates), name
    assert set(y[strategies.select("kmeans", pool, 3)]) == {0, 1, 2}  # one text from each cluster
    assert (strategies.select("random", pool, 6, seed=3) == strategies.select("random", pool, 6, seed=3)).all()
    far = emb.copy()
    far[0] = [40.0, 40.0, 40.0]
    ood = fast.pool_scores(far, np.arange(1, len(emb), 3), y[1::3], 3)[1]
    flat = strategies.PoolScores(far, candidates, np.full((len(emb), 3), 1 / 3), ood)
    assert strategies.select("ood_uncertainty", flat, 1)[0] == 0  # equally ambiguous: the far text first
    with pytest.raises(ValueError, match="unknown strategy"):
        strategies.select("psychic", pool, 3)


def test_model_strategies_fall_back_to_kmeans_without_a_model():
    emb, y = blobs()
    pool = strategies.PoolScores(emb, np.arange(len(emb)))
    assert set(y[strategies.select("breaking_ties", pool, 3)]) == {0, 1, 2}


def test_out_of_fold_matches_a_brute_force_refit():
    emb, y = blobs(2)
    emb = emb + np.random.default_rng(0).normal(0, 4, emb.shape)  # overlapping, so folds matter
    proba = fast.out_of_fold(emb, y, 3, folds=5, seed=0)
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(emb, y):
        model = LogisticRegression(C=1.0, max_iter=5000, random_state=0).fit(emb[train], y[train])
        np.testing.assert_allclose(proba[test], model.predict_proba(emb[test]), atol=1e-9)
    assert fast.folds_for(np.array([0, 0, 1, 1, 1])) == 2
