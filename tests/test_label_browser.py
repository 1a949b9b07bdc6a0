"""End to end in Debian's Chromium: the labelling page on a project created from a file, with the
real bundled MiniLM encoder. Labels 20 texts with the keyboard (undo and a held-out text included),
trains the fast model twice, reads the metrics, learning curve and confusion matrix, opens a
mislabelled text's salience and fixes its label in place; saves screenshots."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agilecls.loop import Project
from test_browser import method_titles
from test_label_api import LABELS, TRUTH, make_project

from conftest import ARTIFACTS, NEEDS_CHROMIUM, chromium_page, serve_in_thread

DOCS_IMG = Path(__file__).parent.parent / "docs" / "how-to" / "img"

pytestmark = NEEDS_CHROMIUM


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A project of 40 texts from a CSV file, its labelling app served by uvicorn in a thread."""
    from agilecls.server import create_app

    project = make_project(tmp_path_factory.mktemp("label-browser") / "topics", retrain_every=0)
    with serve_in_thread(create_app(project=project.folder, token="tok")) as url:
        yield url, project.folder


@pytest.fixture(scope="module")
def page(served):
    with chromium_page() as page:
        yield page


def current(page) -> str:
    return page.evaluate("document.body.dataset.current")


def is_audit(page) -> bool:
    """Whether the text on screen is a random audit text (it stays a test text)."""
    return page.locator("#audit-badge").is_visible()


def press_label(page, key: str, labelled: int) -> None:
    page.keyboard.press(key)  # answered once the label is committed and the next text shows
    page.wait_for_function(f"document.body.dataset.labelled === '{labelled}'")


def key_for(text_id: str, wrong: bool = False) -> str:
    label = TRUTH[text_id]
    if wrong:
        label = next(lab for lab in LABELS if lab != label)
    return str(LABELS.index(label) + 1)


def train(page, versions: int) -> None:
    page.click("#train-fast")
    page.wait_for_function(f"document.querySelectorAll('#versions tr').length === {versions + 1}", timeout=120_000)
    page.wait_for_function(f"document.querySelectorAll('#curve circle.pt-cross_validated').length === {versions}",
                           timeout=120_000)


def test_labelling_in_chromium(page, served):
    url, folder = served
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(url + "/#token=tok")  # the prompt-debugging page links the labelling page, token and all
    page.wait_for_selector("#label-link:not(.hidden)")
    page.click("#label-link")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#project-name").inner_text() == "topics"
    assert page.locator(".lbtn").all_inner_texts()[0].startswith("1")
    assert "Suggested:" in page.locator("#suggestion").inner_text()  # the zero-shot pre-label

    # 20 texts with the keyboard: two deliberately wrong, one undone and relabelled, one held out.
    wrong, labelled, held = set(), 0, None
    while labelled < 20:
        text_id = current(page)
        assert text_id and page.locator("#text").inner_text() == Project(folder).store.text(text_id)["text"]
        if labelled == 4:  # label, undo (the same text comes back), then label again
            press_label(page, key_for(text_id), labelled + 1)
            page.keyboard.press("u")
            page.wait_for_function(f"document.body.dataset.labelled === '{labelled}'")
            assert current(page) == text_id
        if labelled >= 8 and held is None and not is_audit(page):
            page.keyboard.press("t")
            page.wait_for_selector("#test-badge:not(.hidden)")
            held = text_id
        if labelled >= 6 and len(wrong) < (1 if labelled < 13 else 2) and not is_audit(page):
            wrong.add(text_id)
        press_label(page, key_for(text_id, text_id in wrong), labelled + 1)
        labelled += 1
    counts = [int(n) for n in page.locator("#counts .n").all_inner_texts()]
    assert sum(counts) == 20 and min(counts) >= 2
    stored = Project(folder).store.frame().set_index("id")
    assert stored["label"].notna().sum() == 20 and bool(stored.loc[held, "is_test"])
    assert all(stored.loc[i, "label"] != TRUTH[i] for i in wrong)

    # Train, label four more, train again: metrics, a two-point learning curve, the confusion matrix.
    train(page, 1)
    for _ in range(4):
        press_label(page, key_for(current(page)), labelled + 1)
        labelled += 1
    train(page, 2)
    tiles = [t.lower() for t in page.locator("#metrics .tile .k").all_inner_texts()]  # CSS upper-cases them
    assert tiles[:3] == ["f1 at the rule", "roc-auc", "accuracy"]
    assert float(page.locator("#metrics .tile .v").first.inner_text()) >= 0.7
    assert page.locator("#confusion tr").count() == 3
    frame = Project(folder).store.frame()
    trained = int((frame["label"].notna() & ~frame["is_test"]).sum())  # held-out and audit texts are out
    assert sum(int(x) for x in page.locator("#confusion td").all_inner_texts()) == trained < 24
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "label_page.png"), full_page=True)

    # The review: a mislabelled text is among the disagreements; its salience; fix its label in place.
    page.wait_for_selector("#errors .review-row")
    listed = page.locator("#errors .review-row").evaluate_all("rows => rows.map(r => r.dataset.id)")
    text_id = next(i for i in listed if i in wrong)  # the model disagrees with a deliberate mistake
    row = page.locator(f"#errors .review-row[data-id='{text_id}']")
    row.locator(".review-text").click()
    page.wait_for_function(f"document.body.dataset.explained === '{text_id}'", timeout=120_000)
    assert page.locator("#explain-heatmap").inner_text() == stored.loc[text_id, "text"]
    assert page.locator("#explain-heatmap .hl").count() == len(stored.loc[text_id, "text"].split())
    titles = method_titles(url, token="tok")  # the page shows the titles /api/info serves
    assert page.locator("#method option").all_inner_texts() == list(titles.values())
    assert f" · {titles['grad_dot_input']} · " in page.locator("#explain-meta").inner_text()
    predicted = row.locator(".review-meta b").nth(1).inner_text()
    assert page.locator("#explain-label").inner_text() == f"“{predicted}”"  # the words behind the disagreement
    with page.expect_response("**/api/project/explain") as answer:
        page.select_option("#method", "integrated_gradients")
    page.wait_for_function("(t) => document.querySelector('#explain-meta').textContent.includes(t)",
                           arg=titles["integrated_gradients"])
    warnings = answer.value.json()["warnings"]
    assert page.locator("#explain-warnings").is_visible() == bool(warnings)
    page.locator("#explain-card").screenshot(path=str(ARTIFACTS / "label_salience.png"))

    row.locator("select.fix").select_option(TRUTH[text_id])
    page.wait_for_selector(f"#errors .review-row.fixed[data-id='{text_id}']")
    assert Project(folder).store.text(text_id)["label"] == TRUTH[text_id]
    page.click("#show-issues")
    page.wait_for_selector("#issues:not(.hidden)")
    page.screenshot(path=str(ARTIFACTS / "label_review.png"), full_page=True)

    # A full training job in progress (a stand-in process, so Cancel has something to stop): the page
    # polls its stage, epoch, loss and time left every second; Cancel ends it.
    sleeper = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        store = Project(folder).store
        job = store.start_job("full")
        store.update_job(job, status="running", pid=sleeper.pid, progress={"stage": "tuning the language model"})
        page.goto(url + "/label")  # the token stays in the tab's sessionStorage
        page.wait_for_selector("#job:not(.hidden)")
        store.update_job(job, progress={"stage": "tuning the language model", "epoch": 2, "epochs": 6,
                                        "loss": 0.41, "seconds_left": 95})
        page.wait_for_function("document.querySelector('#job-detail').textContent.includes('epoch 2/6')")
        assert "loss 0.410 · about 1 min 35 s left" in page.locator("#job-detail").inner_text()
        assert page.locator("#train-full").is_disabled()
        page.locator("#model-card").screenshot(path=str(ARTIFACTS / "label_job.png"))
        page.click("#cancel")
        page.wait_for_function("document.querySelector('#job-title').textContent.endsWith('cancelled')")
        assert sleeper.wait(10) != 0 and store.jobs()[-1]["status"] == "cancelled"
    finally:
        sleeper.kill()
        sleeper.wait()

    DOCS_IMG.mkdir(exist_ok=True)
    for name in ("label_page.png", "label_salience.png", "label_job.png"):
        shutil.copy(ARTIFACTS / name, DOCS_IMG / name)
    assert requests and all(u.startswith(url) for u in requests)  # nothing from the network
    assert page.errors == []


@pytest.fixture(scope="module")
def served_audited(tmp_path_factory):
    """A project that retrains every 4 labels and shows one random audit text in two."""
    from agilecls.server import create_app

    project = make_project(tmp_path_factory.mktemp("label-audit") / "topics", retrain_every=4, audit_rate=0.5)
    with serve_in_thread(create_app(project=project.folder)) as url:
        yield url, project.folder


def test_serving_version_audit_interval_and_stopping_signal_in_chromium(page, served_audited):
    """Labelling alone (no Train button) retrains the model in the background; the page then shows
    the audit estimate with its interval, the serving version and why, the stopping signal; a
    click serves an older version."""
    url, folder = served_audited
    page.goto(url + "/label")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#audit").inner_text() == "No version yet."
    assert "from zero-shot scores" in page.locator("#suggestion").inner_text()
    labelled = 0
    while current(page):  # every text: half of them random audit texts (audit_rate=0.5)
        labelled += 1
        press_label(page, key_for(current(page)), labelled)
    assert labelled == 40
    page.wait_for_function("document.body.dataset.retrained && document.querySelector('#retrain').classList"
                           ".contains('hidden')", timeout=120_000)
    assert len(Project(folder).versions()) >= 3  # every 4 training labels, no button pressed
    page.goto(url + "/label")  # the panel as it stands after the last label
    page.errors.clear()  # requests of the page before, cut short by the reload
    page.wait_for_selector("#audit[data-enough]")
    report = Project(folder).evaluate()
    assert report["audit"]["enough"] and report["audit"]["n"] >= 12
    interval = page.locator("#audit .interval").inner_text()
    assert interval == f"{report['audit']['low']:.3f}–{report['audit']['high']:.3f}"
    assert f"on {report['audit']['n']} random texts" in page.locator("#audit").inner_text()
    serving = page.locator("#serving").inner_text()
    assert serving.startswith(f"Serving: version {report['serving']['version']} (fast)")
    assert page.locator("#versions tr.serving-row").count() == 1
    assert page.locator("#stopping").inner_text() == report["stopping"]["message"]
    assert page.locator("#rule").inner_text().startswith("Decision rule:")
    page.screenshot(path=str(ARTIFACTS / "label_audit.png"), full_page=True)
    first = Project(folder).versions()[0]["id"]
    page.click(f"#versions button[data-serve='{first}']")
    page.wait_for_function(f"document.querySelector('#serving').dataset.version === '{first}'")
    assert "chosen by you" in page.locator("#serving").inner_text()
    assert Project(folder).serving()["id"] == first
    shutil.copy(ARTIFACTS / "label_audit.png", DOCS_IMG / "label_audit.png")
    assert page.errors == []
