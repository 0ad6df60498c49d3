"""The web page in a real headless Chromium against a real server (uvicorn on a free
loopback port) and tiny models (built, saved and loaded; untrained, since the page must show
whatever the model outputs): the page reads the card, asks for the API key,
sends an uploaded image and a typed caption, and draws this model's own probabilities and
modality attribution; a corrupt file shows a readable error; audio recorded from Chromium's
fake microphone is encoded to WAV in the page and predicted; an aligned model's page
searches its index and scores one image against several texts.

Skips when Chromium, chromedriver, selenium or the `ship` extra is missing, except with
PLAIT_REQUIRE_BROWSER=1 (CI: `.ci/run` installs the browser), where it fails instead.
`scripts/page_screenshot.py` runs this file with PLAIT_PAGE_SCREENSHOT_DIR set to keep the
screenshot for the README.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

REQUIRED = os.environ.get("PLAIT_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
API_KEY = "page-test-key"  # a key the test server is started with (settings, not env)
CAPTION = "a red circle"
WAIT_S = 20


def _unavailable(why: str) -> None:
    message = f"browser test cannot run: {why}"
    if REQUIRED:
        pytest.fail(message + " (PLAIT_REQUIRE_BROWSER=1)")
    pytest.skip(message)


def _need_modules(*names: str) -> None:
    import importlib.util

    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        _unavailable(f"missing Python packages {missing} (pip install 'plait[ship,dev]')")


# ------------------------------------------------------------------------ browser, server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module; the fake microphone plays a steady tone."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        _unavailable(f"{missing} not found (apt-get install chromium chromium-driver)")
    _need_modules("selenium", "fastapi", "uvicorn", "multipart")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--use-fake-ui-for-media-stream",  # grant the microphone without a prompt
        "--use-fake-device-for-media-stream",  # a synthetic microphone
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1200,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


class Served:
    """uvicorn serving `app` in a thread on a free loopback port, for the `with` block."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}/"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + WAIT_S
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT_S)
        self.socket.close()


def _train(raw: dict) -> Path:
    from plait.api import train_run
    from plait.config import PlaitConfig

    return train_run(PlaitConfig.from_dict(raw)).model_dir


def _built(raw: dict, out: Path) -> Path:
    """A saved model folder of `raw`'s model, untrained: the page must show whatever this
    model outputs, and building takes a second where training with its report takes ten."""
    from plait.config import PlaitConfig
    from plait.data import prepare_data
    from plait.tasks import task_of

    config = PlaitConfig.from_dict(raw)
    data = prepare_data(config, progress=False)
    task = task_of(config)
    model = task.build(config, data.processors, data.labels)
    return task.predictor_of(model, config, data.processors, data.labels).save(out)


@pytest.fixture(scope="module")
def classifier(browser: Any, tiny_config, demo_data: Path, tmp_path_factory):
    """A caption + image + audio classifier served with an API key, and its data folder:
    a tiny untrained one; for the README's screenshot, the demo's model (given by
    PLAIT_PAGE_MODEL, or trained here with `plait demo`'s config)."""
    import plait
    from plait.serve import ServeSettings, create_app

    runs = tmp_path_factory.mktemp("page-classifier")
    given = os.environ.get("PLAIT_PAGE_MODEL")
    if given:
        predictor = plait.load(given)
        data = Path(predictor.config.data.test or predictor.config.data.train).parent
    elif os.environ.get("PLAIT_PAGE_SCREENSHOT_DIR"):
        from plait.datasets.demo import generate_demo
        from plait.demo import demo_config

        data = runs / "data"
        generate_demo(data, n_train=900, n_test=300, seed=0)
        raw = demo_config(data, runs, epochs=10)
        raw["training"]["progress"] = False
        predictor = plait.load(_train(raw))
    else:
        data = demo_data
        predictor = plait.load(_built(tiny_config(runs, "page-classifier"), runs / "model"))
    settings = ServeSettings(api_key=API_KEY, max_wait_ms=0)
    with Served(create_app(predictor, settings)) as served:
        yield served, predictor, data


@pytest.fixture(scope="module")
def aligned(browser: Any, tiny_config, demo_data: Path, tmp_path_factory):
    """A tiny untrained caption <-> image model with an index of the demo test images (no
    key), and its data folder; for the README's screenshot, PLAIT_PAGE_ALIGNED_MODEL and
    PLAIT_PAGE_INDEX when given (e.g. `plait demo retrieval`'s)."""
    import plait
    from plait.retrieval.search import build_index, load_index
    from plait.serve import ServeSettings, create_app

    given, index = os.environ.get("PLAIT_PAGE_ALIGNED_MODEL"), os.environ.get("PLAIT_PAGE_INDEX")
    if given and index:
        folder, data = Path(given), Path(plait.load(given).config.data.train).parent
    else:
        runs = tmp_path_factory.mktemp("page-aligned")
        raw = tiny_config(runs, "page-aligned", alignment={"dim": 16, "pair": ["caption", "image"]})
        folder, data, index = _built(raw, runs / "model"), demo_data, str(runs / "index")
        build_index(folder, demo_data / "test.csv", "image", index)
    predictor = plait.load(folder)
    app = create_app(predictor, ServeSettings(max_wait_ms=0), load_index(index))
    with Served(app) as served:
        yield served, predictor, data


# ------------------------------------------------------------------------ page helpers


def _wait(driver: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S).until(condition)
    except Exception:
        shown = [e.text for e in _css(driver, ".error, .status") if e.text]
        logs = driver.get_log("browser")
        raise AssertionError(
            f"the page never showed {what}; it shows {shown}; browser log: {logs}"
        ) from None


def _css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def _open(driver: Any, url: str, key: str | None = None) -> None:
    """Load the page; with `key`, give it through the page's key form first."""
    driver.get(url)
    if key is not None:
        _wait(driver, lambda d: _css(d, "#auth:not([hidden]) #api-key"), "the API key form")
        (field,) = _css(driver, "#api-key")
        field.send_keys(key)
        _css(driver, "#auth-form button")[0].click()
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready"), "the card")


def _bars(driver: Any, chart: str) -> dict[str, float]:
    return {
        row.get_attribute("data-label"): float(row.get_attribute("data-value"))
        for row in _css(driver, f"#{chart} .bar-row")
    }


def _file_input(driver: Any, section: str, modality: str) -> Any:
    (field,) = _css(driver, f'#{section}-inputs input[type=file][name="{modality}"]')
    return field


def _expected_probabilities(predictor: Any, image: Path | None, caption: str | None) -> dict:
    row = {"id": ["q"], "caption": [caption], "image": [str(image) if image else None]}
    frame = predictor.predict_proba(pd.DataFrame({**row, "audio": [None]}))
    return {c.removeprefix("proba_"): float(frame[c].iloc[0]) for c in frame if c != "id"}


def _screenshot(driver: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    # the whole page, not just the window (Chromium's DevTools protocol)
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 10_000  # a rendered page, not an empty canvas
    keep = os.environ.get("PLAIT_PAGE_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


# ------------------------------------------------------------------------ the checks


def test_upload_predicts_with_chart_and_attribution_and_a_bad_file_reads_clearly(
    browser: Any, classifier, tmp_path: Path
):
    served, predictor, data = classifier
    driver = browser
    driver.get(served.url)
    # the card needs the key: the page says so and shows the key form
    _wait(driver, lambda d: _css(d, "#page-error:not([hidden])"), "the missing-key error")
    assert "API key" in _css(driver, "#page-error")[0].text
    # a wrong key is refused in words, and the forms stay unbuilt
    _css(driver, "#api-key")[0].send_keys("not-the-key")
    _css(driver, "#auth-form button")[0].click()
    _wait(driver, lambda d: "did not accept" in _css(d, "#page-error")[0].text, "a refused key")
    assert not driver.execute_script("return document.body.dataset.ready")
    _open(driver, served.url, API_KEY)

    assert _css(driver, "#model-name")[0].text == predictor.config.name
    names = [e.get_attribute("name") for e in _css(driver, "#predict-inputs [name]")]
    assert names == ["caption", "image", "audio"]  # one input per modality, in card order
    assert "image/png" in _file_input(driver, "predict", "image").get_attribute("accept")

    # a test row of the model's data: its caption typed, its image uploaded, no audio
    rows = pd.read_csv(data / "test.csv").dropna(subset=["caption", "image"])
    caption, image = rows["caption"].iloc[0], data / rows["image"].iloc[0]
    _file_input(driver, "predict", "image").send_keys(str(image))
    _css(driver, "textarea[name=caption]")[0].send_keys(caption)
    _css(driver, "#predict-submit")[0].click()
    _wait(driver, lambda d: _css(d, "#attribution-chart .bar-row"), "the attribution")

    shown = _bars(driver, "probability-chart")
    expected = _expected_probabilities(predictor, image, caption)
    assert list(shown) == sorted(expected, key=expected.get, reverse=True)  # best first
    assert set(shown) == set(predictor.labels.names)
    for label, value in expected.items():
        assert math.isclose(shown[label], value, abs_tol=1e-5), (label, shown, expected)
    best = max(expected, key=expected.get)
    assert _css(driver, "#prediction")[0].text == best
    attribution = _bars(driver, "attribution-chart")
    assert set(attribution) == {"caption", "image", "audio"}
    assert attribution["audio"] == 0.0  # a modality left empty contributes nothing
    # Shapley values add up: the page's baseline + contributions is the predicted probability
    status = _css(driver, "#attribution-status")[0].text
    assert f"for {best}:" in status and f"{expected[best]:.3f} with these inputs" in status, status
    assert _css(driver, "#predict-error")[0].get_attribute("hidden") is not None
    _screenshot(driver, tmp_path, "page.png")

    # the key never left page memory: no storage, no cookie, not in the DOM
    stored = driver.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie,"
        " document.getElementById('api-key').value, document.documentElement.outerHTML]"
    )
    assert stored[:4] == [0, 0, "", ""]
    assert API_KEY not in stored[4]

    # a corrupt "image": the page shows the server's readable reason, no chart
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a picture\n")
    _file_input(driver, "predict", "image").send_keys(str(broken))
    _css(driver, "#predict-submit")[0].click()
    error = _wait(
        driver,
        lambda d: [e for e in _css(d, "#predict-error") if e.is_displayed() and e.text],
        "an error for the corrupt file",
    )[0].text
    assert "image" in error and "{" not in error and "Traceback" not in error, error
    assert not _css(driver, "#predict-results")[0].is_displayed()

    # Clear sends the image as missing: the caption alone predicts, the image adds nothing
    _css(driver, "#predict-inputs button.clear")[0].click()
    assert _file_input(driver, "predict", "image").get_attribute("value") == ""
    _css(driver, "#predict-submit")[0].click()
    _wait(driver, lambda d: _css(d, "#attribution-chart .bar-row"), "a caption-only prediction")
    assert not _css(driver, "#predict-error")[0].is_displayed()
    expected = _expected_probabilities(predictor, None, caption)
    for label, value in _bars(driver, "probability-chart").items():
        assert math.isclose(value, expected[label], abs_tol=1e-5), (label, value, expected)
    assert _bars(driver, "attribution-chart")["image"] == 0.0


def test_a_dropped_image_and_audio_recorded_in_the_page_are_predicted(browser: Any, classifier):
    served, predictor, _ = classifier
    driver = browser
    _open(driver, served.url, API_KEY)
    # an image dropped on the drop zone (a PNG drawn in the page, dropped as a browser would)
    dropped = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const canvas = document.createElement('canvas'); canvas.width = canvas.height = 32;"
        "const g = canvas.getContext('2d'); g.fillStyle = '#c33'; g.fillRect(4, 4, 24, 24);"
        "canvas.toBlob((blob) => {"
        " const data = new DataTransfer();"
        " data.items.add(new File([blob], 'dropped.png', {type: 'image/png'}));"
        " const zone = document.querySelector('#predict-inputs input[name=image]').parentNode;"
        " zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true,"
        "   cancelable: true}));"
        " const input = zone.querySelector('input');"
        " done([input.files.length && input.files[0].name,"
        "       !zone.querySelector('img.preview').hidden]); }, 'image/png');"
    )
    assert dropped == ["dropped.png", True]
    (record,) = _css(driver, "#predict-inputs button.record")
    record.click()
    _wait(driver, lambda d: "Recording" in _css(d, "#predict-inputs .status")[0].text, "recording")
    time.sleep(1.0)
    record.click()
    status = _wait(
        driver,
        lambda d: [e.text for e in _css(d, "#predict-inputs .status") if "Recorded" in e.text],
        "the end of the recording",
    )[0]
    assert float(status.split()[1]) >= 0.5, status
    header = driver.execute_script(
        "const a = document.querySelector('#predict-inputs audio.preview');"
        "return fetch(a.src).then(r => r.arrayBuffer()).then(b => {"
        " const v = new DataView(b); return [String.fromCharCode(...new Uint8Array(b, 0, 4)),"
        " String.fromCharCode(...new Uint8Array(b, 8, 4)), v.getUint16(20, true),"
        " v.getUint16(34, true), b.byteLength]; });"
    )
    assert header[:4] == ["RIFF", "WAVE", 1, 16], header  # PCM, 16-bit
    _css(driver, "#predict-submit")[0].click()
    _wait(driver, lambda d: _css(d, "#attribution-chart .bar-row"), "a prediction from audio")
    shown = _bars(driver, "probability-chart")
    assert set(shown) == set(predictor.labels.names)
    assert math.isclose(sum(shown.values()), 1.0, abs_tol=1e-4)
    attribution = _bars(driver, "attribution-chart")
    assert attribution["caption"] == 0.0  # the dropped image and the recording were given


def test_aligned_page_searches_the_index_and_scores_texts(browser: Any, aligned, tmp_path: Path):
    served, predictor, data = aligned
    driver = browser
    _open(driver, served.url)
    assert _css(driver, "#predict")[0].get_attribute("hidden") is not None
    assert _css(driver, "#auth")[0].get_attribute("hidden") is not None  # no key needed

    _css(driver, '#search-inputs input[name="caption"]')[0].send_keys(CAPTION)
    k = _css(driver, "#search-k")[0]
    k.clear()
    k.send_keys("4")
    _css(driver, "#search-submit")[0].click()
    hits = _wait(driver, lambda d: _css(d, "#search-hits .hit"), "the search hits")
    assert len(hits) == 4
    scores = [float(h.find_element("css selector", ".hit-score").text.split()[1]) for h in hits]
    assert scores == sorted(scores, reverse=True)
    loaded = _wait(
        driver,
        lambda d: d.execute_script(
            "const i = [...document.querySelectorAll('#search-hits img')];"
            "return i.length === 4 && i.every(x => x.complete && x.naturalWidth > 0);"
        ),
        "the hits' thumbnails",
    )
    assert loaded

    image = sorted((data / "images").glob("*.png"))[1]
    texts = ["a red circle", "a blue square", "a green triangle"]
    _file_input(driver, "similarity", "image").send_keys(str(image))
    _css(driver, "#similarity-texts")[0].send_keys("\n".join(texts))
    _css(driver, "#similarity-submit")[0].click()
    _wait(driver, lambda d: len(_css(d, "#similarity-chart .bar-row")) == 3, "the scores")
    shown = _bars(driver, "similarity-chart")
    expected = predictor.similarity(image=[str(image)], caption=texts).iloc[0].tolist()
    assert set(shown) == set(texts)
    for text, cosine in zip(texts, expected, strict=True):
        assert math.isclose(shown[text], cosine, abs_tol=1e-4), (text, shown, expected)

    # the same texts as class names: zero-shot probabilities, this model's own prediction
    _css(driver, "#zeroshot-submit")[0].click()
    _wait(driver, lambda d: "Zero-shot" in _css(d, "#similarity-result")[0].text, "zero-shot")
    probabilities = _bars(driver, "similarity-chart")
    assert set(probabilities) == set(texts)
    assert math.isclose(sum(probabilities.values()), 1.0, abs_tol=1e-4)
    frame = pd.DataFrame({"id": ["q"], "image": [str(image)]})
    expected_class = predictor.zeroshot(frame, texts, modality="image").predictions
    best = str(expected_class["prediction"].iloc[0])
    assert max(probabilities, key=probabilities.get) == best
    assert _css(driver, "#similarity-result")[0].text == f"Zero-shot: {best}"
    _screenshot(driver, tmp_path, "page-aligned.png")


@pytest.fixture(scope="module")
def relabelled(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo tables with absolute media paths, a numeric `score` and multilabel `tags`."""
    from plait.data.demo import CLASS_NAMES, label_factors

    out = tmp_path_factory.mktemp("page-relabelled")
    for split in ("train", "test"):
        frame = pd.read_csv(demo_data / f"{split}.csv")
        for column in ("image", "audio"):
            frame[column] = [str(demo_data / v) if isinstance(v, str) else v for v in frame[column]]
        frame["score"] = [float(CLASS_NAMES.index(v)) for v in frame["label"]]
        frame["tags"] = ["|".join(label_factors(v)[:2]) for v in frame["label"]]
        frame.to_csv(out / f"{split}.csv", index=False)
    return out


@pytest.mark.parametrize(("task", "label"), [("multilabel", "tags"), ("regression", "score")])
def test_multilabel_and_regression_results_read_as_such(
    browser: Any, tiny_config, relabelled: Path, tmp_path: Path, task: str, label: str
):
    import plait
    from plait.serve import ServeSettings, create_app

    raw = tiny_config(tmp_path, f"page-{task}")
    raw["data"].update(
        train=str(relabelled / "train.csv"), test=str(relabelled / "test.csv"), label=label
    )
    raw["data"]["split"] = {"method": "random", "valid": 0.25, "test": 0.0}
    raw["head"] = {"task": task, "hidden": 8}
    predictor = plait.load(_built(raw, tmp_path / "model"))
    caption = pd.read_csv(relabelled / "test.csv")["caption"].dropna().iloc[0]
    row = {"id": ["q"], "caption": [caption], "image": [None], "audio": [None]}
    expected = predictor.predict(pd.DataFrame(row))
    with Served(create_app(predictor, ServeSettings(max_wait_ms=0))) as served:
        _open(browser, served.url)
        _css(browser, "textarea[name=caption]")[0].send_keys(caption)
        _css(browser, "#predict-submit")[0].click()
        _wait(browser, lambda d: _css(d, "#predict-results:not([hidden])"), "the results")
        shown = _css(browser, "#prediction")[0].text
        bars = _bars(browser, "probability-chart")
        if task == "multilabel":  # each label's probability; the prediction: those >= 0.5
            assert set(bars) == set(predictor.labels.names)
            for name, value in bars.items():
                assert math.isclose(value, float(expected[f"proba_{name}"].iloc[0]), abs_tol=1e-5)
            chosen = [n for n in predictor.labels.names if bars[n] >= 0.5]
            assert shown == (", ".join(chosen) or "(no label above the threshold)")
        else:  # a value in the label's units, no chart
            assert bars == {}
            assert shown == f"score: {float(expected['score'].iloc[0]):.3f}"


def test_captioner_page_captions_several_pictures(browser: Any, tiny_captioner: Path):
    import plait
    from plait.serve import ServeSettings, create_app

    predictor = plait.load(tiny_captioner)
    table = Path(predictor.config.data.test)
    pictures = [table.parent / p for p in pd.read_csv(table)["image"].head(2)]
    with Served(create_app(predictor, ServeSettings(max_wait_ms=0))) as served:
        driver = browser
        _open(driver, served.url)
        assert _css(driver, "#predict")[0].get_attribute("hidden") is not None
        assert "captioning model" in _css(driver, "#model-summary")[0].text
        _file_input(driver, "caption", "image").send_keys("\n".join(map(str, pictures)))
        beams = _css(driver, "#caption-beams")[0]
        beams.clear()
        beams.send_keys("2")
        _css(driver, "#caption-submit")[0].click()
        rows = _wait(driver, lambda d: _css(d, "#caption-results .caption-text"), "captions")
        shown = [r.text for r in rows]
    frame = pd.DataFrame({"id": ["a", "b"], "image": [str(p) for p in pictures]})
    assert shown == predictor.caption(frame, num_beams=2, progress=False)["caption"].tolist()
