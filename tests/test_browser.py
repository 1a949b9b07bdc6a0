"""End to end in Debian's Chromium: the prompt-debugging app with the real bundled default model.

Loads LIT's sample prompts, edits the few-shot prompt, explains it, switches granularity, compares
the mistaken and the fixed prompt side by side, classifies a text, and saves a screenshot.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from conftest import ARTIFACTS, NEEDS_CHROMIUM, chromium_page, serve_in_thread

SUFFIX = " Contains eggs.\nRecommendation:"
STATIC = Path(__file__).parent.parent / "src" / "agilecls" / "server" / "static"
pytestmark = NEEDS_CHROMIUM


@pytest.fixture(scope="module")
def server():
    """The app with the bundled default model, served by uvicorn in a thread on a free port."""
    from agilecls.lm.loading import DEFAULT_MODEL, load_lm
    from agilecls.server import create_app

    with serve_in_thread(create_app(load_lm(DEFAULT_MODEL))) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with chromium_page() as page:
        yield page


def method_titles(url: str, token: str | None = None) -> dict[str, str]:
    """``{method: display title}`` as the server's /api/info answers, in its method order."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url + "/api/info", headers=headers)) as answer:
        info = json.load(answer)
    assert set(info["method_titles"]) == set(info["methods"])
    return {name: info["method_titles"][name] for name in info["methods"]}


def _explain(page, timeout=240_000):
    before = page.locator("#result-meta").inner_text()
    page.click("#explain")
    page.wait_for_function("(b) => { const m = document.querySelector('#result-meta').textContent;"
                           " return m && m !== b && !document.body.classList.contains('working'); }",
                           arg=before, timeout=timeout)
    assert "error" not in page.locator("#status").get_attribute("class")


def _edit(page, source):
    page.click(f".dp[data-source='{source}']")
    prompt = page.input_value("#prompt")
    assert prompt.endswith("Analysis:")
    page.fill("#prompt", prompt + SUFFIX)
    page.fill("#target", " Avoid.")


def test_prompt_debugging_in_chromium(page, server):
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(server)
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#model-name").inner_text() == "smollm2-135m-instruct"
    # The method list shows the titles /api/info serves, in its order (the pages hard-code none).
    titles = method_titles(server)
    assert page.locator("#method option").all_inner_texts() == list(titles.values())
    assert page.locator("#clf-method option").evaluate_all("os => os.map(o => o.value)") == list(titles)
    scripts = "".join(path.read_text(encoding="utf-8") for path in STATIC.glob("*.js"))
    assert not [title for title in titles.values() if title in scripts]

    # Load the samples, edit the few-shot prompt with the copy-paste mistake, explain it.
    page.click("#load-samples")
    page.wait_for_function("document.querySelectorAll('.dp').length === 12")
    _edit(page, "fewshot-mistake")
    _explain(page)
    assert page.locator("#granularity").input_value() == "sentences"
    n_sentences = page.locator("#heatmap .hl").count()
    assert n_sentences > 15
    top_sentence = page.locator("#top-spans li .span-text").first.inner_text()
    assert top_sentence.strip()
    assert page.locator("#result-meta").inner_text().startswith(titles["grad_l2"] + " · log p(span)")

    # Switch granularity: words give many more spans, paragraphs fewer; the text stays the same.
    page.select_option("#granularity", "words")
    page.wait_for_function(f"document.querySelectorAll('#heatmap .hl').length > {n_sentences}")
    page.select_option("#granularity", "paragraphs")
    page.wait_for_function(f"document.querySelectorAll('#heatmap .hl').length < {n_sentences}")
    assert page.locator("#heatmap").inner_text() == page.input_value("#prompt")
    page.select_option("#granularity", "regex")
    page.fill("#pattern", r"Recommendation:[^\n]*")
    page.press("#pattern", "Enter")
    page.wait_for_function("[...document.querySelectorAll('#heatmap .hl')].some(e => e.textContent === "
                           "'Recommendation: You have to try it.')")
    page.select_option("#granularity", "sentences")

    # A chosen target span re-scores only part of the target.
    chips = page.locator("#target-chips .chip:not(.reset)")
    assert chips.count() >= 2
    chips.nth(0).click()
    chips.nth(0).click()
    assert page.locator("#target-chips .chip.on").count() == 1
    _explain(page)

    # Compare the mistaken prompt (A) with the fixed one (B), Integrated Gradients for both.
    page.select_option("#method", "integrated_gradients")
    page.fill("#steps", "4")
    _explain(page)
    page.click("#pin-a")
    _edit(page, "fewshot-fixed")
    _explain(page)
    page.click("#pin-b")
    page.wait_for_selector("#compare-card:not(.hidden)")
    assert page.locator("#compare-a .heatmap .hl").count() > 15
    assert page.locator("#compare-b .heatmap .hl").count() > 15
    assert "Avoid." in page.locator("#compare-b .heatmap").inner_text()
    assert "You have to try it." in page.locator("#compare-a .heatmap").inner_text()
    page.fill("#intensity", "2.5")
    page.dispatch_event("#intensity", "input")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "salience_app.png"), full_page=True)

    # Classify with a zero-shot classifier: probabilities and the salience of the decision.
    page.click("#tab-classify")
    page.fill("#clf-text", "The soup was cold and the waiter was rude.")
    page.fill("#clf-labels", "positive, negative")
    page.click("#classify")
    page.wait_for_selector("#clf-probs .prob", timeout=240_000)
    probs = page.locator("#clf-probs .pval").all_inner_texts()
    assert len(probs) == 2 and abs(sum(float(p.rstrip("%")) for p in probs) - 100) < 0.2
    assert page.locator("#clf-heatmap").inner_text() == "The soup was cold and the waiter was rude."
    assert page.locator("#clf-heatmap .hl").count() >= 8
    page.screenshot(path=str(ARTIFACTS / "salience_classify.png"), full_page=True)

    # Everything came from the local server: no CDN, no page errors.
    assert requests and all(url.startswith(server) for url in requests)
    assert page.errors == []
