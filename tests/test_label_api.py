"""The labelling page's JSON API (/api/project) on a real project: the bundled MiniLM encoder, real
SQLite, real training; labels, undo, test rows, skips, the queue shared by two tabs, fast training,
evaluation, error review, salience and every bad input answered with a 4xx and one line."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from agilecls.loop import Project
from agilecls.server import create_app

SPORT = ["the striker scored twice in the final", "our team won the football match", "she ran the marathon in "
         "three hours", "the goalkeeper saved a penalty", "tennis players served aces all day", "the cyclist won "
         "the mountain stage", "a late goal decided the derby", "the boxer won the title fight", "he swam fifty "
         "laps in the pool", "the coach picked a new captain", "the basketball team lost in overtime", "fans "
         "cheered the winning runner", "the referee showed a red card", "the sprinter broke the record",
         "they trained hard for the league cup", "the rugby side won the scrum", "our keeper kept a clean sheet",
         "the golfer sank a long putt", "the skier raced down the slope", "the batsman hit a century"]
COOKING = ["simmer the tomato sauce for ten minutes", "bake the bread at two hundred degrees", "chop the onions "
           "and fry them in butter", "whisk the eggs with sugar", "season the soup with salt and pepper", "roast "
           "the chicken with garlic", "knead the dough until smooth", "boil the pasta in salted water", "stir the "
           "risotto slowly", "grill the fish with lemon", "melt the chocolate over steam", "marinate the beef "
           "overnight", "add flour to thicken the gravy", "slice the carrots thinly", "fold the cream into the "
           "batter", "fry the potatoes until golden", "the cake needs more baking powder", "steam the rice for "
           "twenty minutes", "peel and mash the boiled potatoes", "sprinkle herbs over the salad"]
TRUTH = {f"s{i}": "sport" for i in range(len(SPORT))} | {f"c{i}": "cooking" for i in range(len(COOKING))}
LABELS = ["sport", "cooking"]
P = "/api/project/"


def make_project(folder, prelabel: bool = True, **settings):
    """A project of 40 short texts on two clear topics, imported from a CSV file."""
    csv = folder.parent / f"{folder.name}.csv"
    rows = [(f"s{i}", t) for i, t in enumerate(SPORT)] + [(f"c{i}", t) for i, t in enumerate(COOKING)]
    pd.DataFrame(rows, columns=["id", "text"]).sample(frac=1, random_state=0).to_csv(csv, index=False)
    project = Project.create(folder, LABELS, instructions="Is the text about sport or cooking?", audit_seed="tests",
                             **settings)
    assert project.import_texts(csv, id_col="id") == {"imported": 40, "labelled": 0}
    if prelabel:
        project.prelabel(progress=False)
    return project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("label-api") / "topics", retrain_every=0)


@pytest.fixture(scope="module")
def client(project):
    with TestClient(create_app(project=project.folder)) as c:
        yield c


def ok(response, status: int = 200):
    assert response.status_code == status, response.text
    return response.json()


def refused(response, status: int) -> str:
    """The one-line reason of a refused request."""
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if status != 422:
        assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    return detail


def test_label_undo_test_and_skip(client, project):
    status = ok(client.get(P + "status"))
    assert status["labels"] == LABELS and status["texts"] == 40 and status["labelled"] == 0
    assert status["counts"] == {"sport": 0, "cooking": 0} and status["job"] is None and not status["training"]
    assert "diverse_margin" in status["strategies"] and status["default_strategy"] in status["strategies"]

    a = ok(client.post(P + "next", json={"k": 6, "client": "tab-a"}))
    b = ok(client.post(P + "next", json={"k": 6, "client": "tab-b", "strategy": "random"}))
    assert len(a) == len(b) == 6 and not {r["id"] for r in a} & {r["id"] for r in b}  # two tabs, two batches
    assert all(r["suggested"] in LABELS and 0.5 <= r["probability"] <= 1 for r in a)  # zero-shot pre-labels
    assert sum(r["suggested"] == TRUTH[r["id"]] for r in a + b) >= 9  # the pre-labels are mostly right

    for row in a:
        entry = ok(client.post(P + "label", json={"id": row["id"], "label": TRUTH[row["id"]], "client": "tab-a"}))
        assert entry["id"] == row["id"] and entry["previous"] is None
    assert sum(ok(client.get(P + "status"))["counts"].values()) == 6
    assert project.store.frame().set_index("id").loc[a[-1]["id"], "label"] == TRUTH[a[-1]["id"]]

    undone = ok(client.post(P + "undo", json={"client": "tab-a"}))
    assert undone["undone"]["id"] == a[-1]["id"] and undone["text"]["label"] is None
    assert undone["text"]["text"] == a[-1]["text"] and sum(undone["counts"].values()) == 5
    assert ok(client.post(P + "undo", json={"client": "tab-nobody"}))["undone"] is None
    ok(client.post(P + "label", json={"id": a[-1]["id"], "label": TRUTH[a[-1]["id"]], "client": "tab-a"}))

    held = b[0]["id"]
    assert ok(client.post(P + "test", json={"id": held, "is_test": True}))["is_test"] is True
    ok(client.post(P + "label", json={"id": held, "label": TRUTH[held], "client": "tab-b"}))
    assert ok(client.get(P + "status"))["test"] == 1
    ok(client.post(P + "skip", json={"id": b[1]["id"]}))
    offered = {r["id"] for r in ok(client.post(P + "next", json={"k": 40, "client": "tab-b"}))}
    assert held not in offered and b[1]["id"] not in offered and not offered & {r["id"] for r in a}
    assert {r["id"] for r in b[2:]} <= offered  # tab-b's own held texts come back to it


def test_train_evaluate_review_and_explain(client, project):
    frame = project.store.frame()
    unlabelled = frame.loc[frame["label"].isna(), "id"].tolist()
    audited = set(frame.loc[frame["audit"], "id"])
    wrong = next(i for i in ["s1", "s6", "s0", "s12", "s13"] if i in unlabelled and i not in audited)  # plainly sport
    for text_id in unlabelled:
        label = "cooking" if text_id == wrong else TRUTH[text_id]  # one deliberate error
        ok(client.post(P + "label", json={"id": text_id, "label": label, "client": "tab-c"}))

    trained = ok(client.post(P + "train", json={"kind": "fast"}))
    version = trained["version"]
    held_out = int(project.store.frame()["is_test"].sum())  # one held out, the rest random audit texts
    assert audited and held_out == 1 + len(audited)
    assert trained["kind"] == "fast" and version["kind"] == "fast" and version["n_labels"] == 40 - held_out
    assert version["metrics"]["cross_validated"]["accuracy"] >= 0.9
    assert [v["id"] for v in ok(client.get(P + "versions"))] == [version["id"]]
    assert (project.folder / version["folder"] / "agilecls.json").is_file()

    ev = ok(client.get(P + "evaluate"))
    assert ev["cross_validated"]["n"] == version["n_labels"] and ev["cross_validated"]["accuracy"] >= 0.9
    assert ev["confusion"]["labels"] == LABELS and sum(map(sum, ev["confusion"]["matrix"])) == version["n_labels"]
    assert [p["version"] for p in ev["learning_curve"]] == [version["id"]]
    assert ev["learning_curve"][0]["metric"] == "roc_auc" and ev["reliability"]

    errors = ok(client.get(P + "errors", params={"limit": 10}))
    assert wrong in [r["id"] for r in errors]
    row = next(r for r in errors if r["id"] == wrong)
    assert (row["label"], row["predicted"]) == ("cooking", "sport") and row["confidence"] > 0.5
    issues = ok(client.get(P + "issues"))
    assert wrong in [r["id"] for r in issues]

    exp = ok(client.post(P + "explain", json={"id": wrong}))
    assert exp["text"] == project.store.text(wrong)["text"] and exp["version"] == version["id"]
    assert exp["method"] == "grad_dot_input" and exp["info"]["label"] in LABELS
    words = [s for s in exp["text_spans"]["words"] if not s["special"]]
    assert [exp["text"][s["start"]:s["end"]] for s in words] == exp["text"].split()
    assert isinstance(exp["warnings"], list)
    other = ok(client.post(P + "explain", json={"id": wrong, "label": "sport"}))  # the out-of-fold prediction
    assert other["info"]["label"] == "sport" and other["text"] == exp["text"]
    assert "not one of" in refused(client.post(P + "explain", json={"id": wrong, "label": "poetry"}), 400)
    ig = ok(client.post(P + "explain", json={"id": wrong, "method": "integrated_gradients"}))
    assert ig["info"].get("completeness_error") is not None and isinstance(ig["warnings"], list)

    fixed = ok(client.post(P + "label", json={"id": wrong, "label": "sport", "client": "tab-c"}))
    assert (fixed["previous"], fixed["label"]) == ("cooking", "sport")
    assert wrong not in [r["id"] for r in ok(client.get(P + "errors"))]


def test_a_full_version_is_explained_through_its_encoder_member(client, project):
    """A full version is an ensemble: salience goes through its encoder member. (A stand-in ensemble of
    two encoder classifiers, registered as a full version, keeps this test in seconds.)"""
    from agilecls import EncoderClassifier, EnsembleClassifier

    frame = project.store.frame()
    train = frame[frame["label"].notna() & ~frame["is_test"]]
    folder = project.folder / "versions" / "stand-in-full"
    cache = str(project.folder / "embeddings")
    members = [(name, EncoderClassifier("minilm", head="logistic", device="cpu", cache_dir=cache, C=c))
               for name, c in (("encoder", 1.0), ("other", 4.0))]
    ens = EnsembleClassifier(members, labels=LABELS).fit(train["text"].tolist(), train["label"].tolist())
    ens.save(folder)
    proba = ens.predict_proba(frame["text"].tolist())
    version = project.store.add_version("full", len(train), str(folder.relative_to(project.folder)), {},
                                        frame["id"].tolist(), proba, [None] * len(frame))
    exp = ok(client.post(P + "explain", json={"id": "s0"}))
    assert exp["version"] == version and exp["info"]["member"] == "encoder"
    assert exp["text"] == project.store.text("s0")["text"] and exp["text_spans"]["words"]
    assert ok(client.post(P + "explain", json={"id": "s0", "label": "cooking"}))["info"]["label"] == "cooking"
    assert client.app.state.project.loaded_version() == version  # only the newest version is kept in memory
    assert [p["kind"] for p in ok(client.get(P + "evaluate"))["learning_curve"]] == ["fast", "full"]


def test_labels_retrain_in_the_background_and_the_serving_version_is_chosen(tmp_path):
    """Every 4 training labels a label starts a fast retrain; the serving version, the audit
    estimate, the decision rule and the stopping signal come with the evaluation; the user may
    serve any version and change the settings."""
    project = make_project(tmp_path / "topics", retrain_every=4, audit_rate=0.5)
    with TestClient(create_app(project=project.folder)) as c:
        started = 0
        for row in ok(c.post(P + "next", json={"k": 24, "client": "tab"})):
            answer = ok(c.post(P + "label", json={"id": row["id"], "label": TRUTH[row["id"]], "client": "tab"}))
            started += answer["retraining"]
            while ok(c.get(P + "status"))["retraining"]:
                pass
        status = ok(c.get(P + "status"))
        assert status["audit"] == 12 and status["labelled"] == 24 and status["retrain_error"] is None
        fast = [v for v in ok(c.get(P + "versions")) if v["kind"] == "fast"]
        assert started == len(fast) >= 2  # every 4 training labels once two classes have 2 each
        assert fast[-1]["n_labels"] > 12 - 4
        ev = ok(c.get(P + "evaluate"))
        assert ev["serving"]["version"] == fast[-1]["id"] and ev["serving"]["kind"] == "fast"
        audit = ev["audit"]
        assert audit["n"] == 12 and audit["metric"] == "f1" and (audit["enough"] or "needs" in audit["reason"])
        assert ev["rule"]["describe"] and ev["stopping"]["message"] and len(ev["stopping"]["kappas"]) == len(fast) - 1
        served = ok(c.post(P + "serve", json={"version": fast[0]["id"]}))
        assert served == {"version": fast[0]["id"], "reason": "chosen by you"}
        assert ok(c.get(P + "evaluate"))["serving"]["version"] == fast[0]["id"]
        refused(c.post(P + "serve", json={"version": 999}), 404)
        settings = ok(c.post(P + "settings", json={"rule": "recall:0.9", "positive": "sport"}))
        assert settings["rule"] == "recall:0.9" and settings["positive"] == "sport"
        assert "recall:0.9" in ok(c.get(P + "evaluate"))["rule"]["describe"]
        assert "not a label" in refused(c.post(P + "settings", json={"positive": "poetry"}), 400)
        assert "use 'f1'" in refused(c.post(P + "settings", json={"rule": "magic"}), 400)
        refused(c.post(P + "settings", json={"audit_rate": 0.9}), 422)


def test_bad_requests_get_one_line_answers(client, project):
    text_id = project.store.frame()["id"].iloc[0]
    assert "no text with id" in refused(client.post(P + "label", json={"id": "nope", "label": "sport"}), 404)
    assert "unknown label" in refused(client.post(P + "label", json={"id": text_id, "label": "poetry"}), 400)
    assert "unknown strategy" in refused(client.post(P + "next", json={"strategy": "psychic"}), 400)
    for route, body in [("skip", {"id": "nope"}), ("test", {"id": "nope"}), ("explain", {"id": "nope"}),
                        ("cancel", {"job": 999})]:
        refused(client.post(P + route, json=body), 404)
    for route, body in [("next", {"k": 0}), ("next", {"k": 10_000}), ("label", {"id": text_id}),
                        ("label", {"id": text_id, "label": "sport", "client": "bad id!"}), ("undo", {}),
                        ("train", {"kind": "huge"}), ("explain", {"id": text_id, "method": "magic"}),
                        ("label", {"id": "x" * 2000, "label": "sport"}), ("cancel", {"job": "one"})]:
        refused(client.post(P + route, json=body), 422)
    refused(client.get(P + "errors", params={"limit": 0}), 422)

    job = project.store.start_job("full")  # as if a full training were running
    assert ok(client.get(P + "status"))["training"] is True
    assert "still running" in refused(client.post(P + "train", json={"kind": "full"}), 409)
    assert ok(client.post(P + "cancel", json={"job": job}))["status"] == "cancelled"
    assert ok(client.get(P + "status"))["job"]["status"] == "cancelled"


def test_token_guards_the_project_api_and_the_page_needs_a_project(project):
    with TestClient(create_app(project=project.folder, token="s3cret")) as c:
        assert c.get(P + "status").status_code == 401
        assert c.post(P + "label", json={"id": "s0", "label": "sport"}).status_code == 401
        assert ok(c.get(P + "status", headers={"Authorization": "Bearer s3cret"}))["labels"] == LABELS
        page = c.get("/label")
        assert page.status_code == 200 and "label.js" in page.text
        assert c.get("/static/label.js").status_code == 200 and c.get("/static/label_charts.js").status_code == 200
        assert ok(c.get("/api/info", headers={"Authorization": "Bearer s3cret"}))["project"] == "topics"
    with TestClient(create_app()) as c:
        assert c.get("/label").status_code == 404 and c.get(P + "status").status_code == 404
        assert c.get("/api/info").json()["project"] is None


def test_two_tabs_labelling_at_once_lose_and_duplicate_nothing(tmp_path):
    project = make_project(tmp_path / "two-tabs", prelabel=False)
    acked: dict[str, list[str]] = {"tab-1": [], "tab-2": []}
    failures: list[str] = []
    with TestClient(create_app(project=project.folder)) as c:
        for method, route, body in [("post", "train", {"kind": "fast"}), ("get", "evaluate", None),
                                    ("get", "errors", None), ("post", "explain", {"id": "s0"})]:
            request = c.post(P + route, json=body) if method == "post" else c.get(P + route)
            assert "need at least 2 labels" in refused(request, 400) or "no model version" in request.text
        assert ok(c.get(P + "versions")) == []

        def work(tab):
            while True:
                rows = c.post(P + "next", json={"k": 3, "client": tab, "strategy": "random"}).json()
                if not rows:
                    return
                for row in rows:
                    r = c.post(P + "label", json={"id": row["id"], "label": TRUTH[row["id"]], "client": tab})
                    if r.status_code != 200:
                        failures.append(r.text)
                        return
                    acked[tab].append(row["id"])

        threads = [threading.Thread(target=work, args=(tab,)) for tab in acked]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert failures == []
    one, two = set(acked["tab-1"]), set(acked["tab-2"])
    assert len(acked["tab-1"]) == len(one) and len(acked["tab-2"]) == len(two) and not one & two
    assert one | two == set(TRUTH) and one and two  # both tabs worked, every text labelled once
    with project.store.connect() as con:
        assert con.execute("SELECT COUNT(*), COUNT(DISTINCT text_id) FROM labels").fetchone() == (40, 40)
        logged = con.execute("SELECT annotator, COUNT(*) FROM label_log WHERE kind = 'label' GROUP BY annotator")
        assert dict(logged.fetchall()) == {tab: len(ids) for tab, ids in acked.items()}
    frame = project.store.frame().set_index("id")
    assert all(frame.loc[i, "label"] == TRUTH[i] for i in TRUTH)


@pytest.mark.parametrize("command", [["label", "--no-browser"], ["serve", "--project"]])
def test_commands_refuse_a_folder_that_is_not_a_project(tmp_path, command):
    from typer.testing import CliRunner

    from agilecls.cli import app

    args = [command[0], *([str(tmp_path), command[1]] if command[0] == "label" else [command[1], str(tmp_path)])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "is not an agilecls project" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_label_command_opens_the_browser_once_the_server_answers(monkeypatch):
    import socket
    import webbrowser

    from agilecls.cli.project import _open_when_up

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        _open_when_up(port, f"http://127.0.0.1:{port}/label", wait=5)
    assert opened == [f"http://127.0.0.1:{port}/label"]
