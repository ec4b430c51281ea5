"""gankit serve in a real browser: Debian's chromium, headless, driven by Selenium 4.

Skipped where chromium, chromedriver or selenium are missing (.ci/run installs them).
Screenshots go to the test's folder, and also to $GANKIT_SCREENSHOTS when it is set.
"""

import base64
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytest.importorskip("starlette")
webdriver = pytest.importorskip("selenium.webdriver")
if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    pytest.skip("Debian's chromium and chromium-driver are not installed", allow_module_level=True)

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # Headless, and nothing that would reach for the network this machine does not have.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-sync", "--disable-component-update",
                 "--no-first-run", "--disable-default-apps", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, served_runs, live_server, tmp_path):
    base = live_server(served_runs)
    shots = [tmp_path] + ([Path(os.environ["GANKIT_SCREENSHOTS"])]
                          if os.environ.get("GANKIT_SCREENSHOTS") else [])

    class Page:
        driver = browser

        def open(self, path="/"):
            browser.get(f"{base}{path}")

        def wait(self, condition, timeout=60):
            return WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda d: condition())

        def find(self, css):
            return browser.find_element(By.CSS_SELECTOR, css)

        def finds(self, css):
            return browser.find_elements(By.CSS_SELECTOR, css)

        def shot(self, name):
            for folder in shots:
                folder.mkdir(parents=True, exist_ok=True)
                browser.save_screenshot(str(folder / f"{name}.png"))

        def errors(self):
            return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    yield Page()
    browser.get("about:blank")   # leave the page before the server stops


def data_url_pixels(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L"))


def test_runs_page_lists_the_trained_run_and_shows_markup_names_as_text(page):
    page.open("/")
    page.wait(lambda: len(page.finds("tr[data-run]")) == 5)
    names = [a.text for a in page.finds("a.run-name")]
    assert "gan/short" in names and "<img src=x onerror=alert(1)>" in names
    row = page.find('tr[data-run="gan/short"]')
    assert "finished" in row.text and "20 / 20" in row.text
    thumb = row.find_element(By.CSS_SELECTOR, "img.thumb")
    page.wait(lambda: page.driver.execute_script("return arguments[0].naturalWidth", thumb) > 0)
    assert page.finds('img[src="x"]') == []           # the name did not become an element
    row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()   # overlay its curves
    page.wait(lambda: page.find("section select").get_attribute("value") != "")
    page.shot("runs")
    assert page.errors() == []


def test_step_slider_moves_through_the_sample_grids(page):
    page.open("/run/gan/short")
    page.wait(lambda: "step 20" in page.find(".grids").text)
    grid = page.find("img.grid")
    assert grid.get_attribute("src").endswith("step_000020.png")
    slider = page.find(".grids input[type=range]")
    slider.send_keys(Keys.HOME)
    page.wait(lambda: grid.get_attribute("src").endswith("step_000010.png"))
    assert "step 10" in page.find(".grids").text
    jump = page.find("input[aria-label='jump to step']")
    jump.send_keys("19", Keys.ENTER)
    page.wait(lambda: grid.get_attribute("src").endswith("step_000020.png"))
    assert page.find(".grids a.button").get_attribute("href").endswith("/api/grids.gif?run=gan%2Fshort")
    page.shot("training")
    assert page.errors() == []


def test_painted_mask_is_filled_and_the_rest_kept(page):
    page.open("/run/gan/short/inpaint")
    page.wait(lambda: "held-out image" in page.find("#tab-inpaint").text)
    time.sleep(0.3)   # the picture is drawn on the canvas once it has loaded
    mask = page.find("#mask")
    # A stroke across the middle of the digit: from 30% to 70% of the width, twice.
    w, h = mask.size["width"], mask.size["height"]
    (ActionChains(page.driver).move_to_element_with_offset(mask, int(-0.2 * w), int(-0.05 * h))
     .click_and_hold().move_by_offset(int(0.4 * w), 0).move_by_offset(0, int(0.1 * h))
     .move_by_offset(int(-0.4 * w), 0).release().perform())
    painted = page.driver.execute_script(
        "const c = document.getElementById('mask'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; const out = [];"
        "for (let i = 3; i < d.length; i += 4) out.push(d[i] > 0 ? 1 : 0); return out;")
    holes = np.array(painted, dtype=bool).reshape(28, 28)
    assert 40 < holes.sum() < 400
    original = data_url_pixels(page.driver.execute_script(
        "return document.querySelector('canvas.pixels').toDataURL('image/png')"))
    page.find("#fill").click()
    page.wait(lambda: page.finds("#filled"), timeout=120)
    filled = data_url_pixels(page.find("#filled").get_attribute("src"))
    assert np.array_equal(filled[~holes], original[~holes])      # outside: unchanged
    assert (filled[holes] != original[holes]).mean() > 0.3       # inside: filled anew
    page.shot("inpaint")
    assert page.errors() == []


def test_drawing_a_digit_shows_the_class_probabilities(page):
    page.open("/run/cvae/classify")
    pad = page.wait(lambda: page.finds("#pad"))[0]
    w = pad.size["width"]
    # a "1": one vertical stroke down the middle
    (ActionChains(page.driver).move_to_element_with_offset(pad, 0, int(-0.3 * w)).click_and_hold()
     .move_by_offset(0, int(0.2 * w)).move_by_offset(0, int(0.2 * w))
     .move_by_offset(0, int(0.2 * w)).release().perform())
    # read in one script: the bars are redrawn whenever a newer answer arrives
    read = "return [...document.querySelectorAll('#bars .barrow .num')].map(e => e.textContent)"
    probs = [float(p) for p in page.wait(lambda: (lambda v: v if len(v) == 10 else None)(
        page.driver.execute_script(read)))]
    assert abs(sum(probs) - 1) < 0.01
    assert "most probable" in page.find(".verdict").text
    page.shot("classify")
    assert page.errors() == []


def test_generate_and_walk_between_two_clicked_samples(page):
    page.open("/run/gan/short/generate")
    grid = page.wait(lambda: [g for g in page.finds("img.pick") if g.get_attribute("src")])[0]
    page.wait(lambda: page.driver.execute_script("return arguments[0].naturalWidth", grid) > 0)
    first = grid.get_attribute("src")
    w = grid.size["width"]
    for dx in (-0.4, 0.4):   # the first and last sample of the top row
        ActionChains(page.driver).move_to_element_with_offset(grid, int(dx * w), int(-0.4 * w)).click().perform()
    page.wait(lambda: len(page.finds(".mark")) == 2 and page.finds(".walk canvas"))
    assert "Walk from sample 1 to sample 6" in page.find(".walk").text
    page.find(".walk input[type=range]").send_keys(Keys.END)
    gif = page.find(".walk a.button").get_attribute("href")
    assert "format=gif" in gif and "a=0" in gif and "b=5" in gif
    page.find("button:not(.primary)").click()   # new seed
    page.wait(lambda: grid.get_attribute("src") != first)
    page.shot("generate")
    assert page.errors() == []


def test_a_table_runs_report_tab_shows_its_scores_and_pictures(page, served_runs, live_server,
                                                              tmp_path):
    page.open("/run/tables/ctgan")
    assert [a.text for a in page.finds("nav.tabs a")] == ["training", "report", "about"]
    assert not page.find(".grids").is_displayed()   # a model of tables draws no sample grids
    page.find("nav.tabs a[href$='/report']").click()
    page.wait(lambda: page.finds("#quality"))
    assert page.find("#quality").text.startswith("quality 0.")
    assert "exact copies of a training row" in page.find("#privacy").text
    pictures = [page.find("#shapes"), page.find("#pairs")]
    page.wait(lambda: all(page.driver.execute_script("return arguments[0].complete && "
                                                     "arguments[0].naturalWidth", p) > 0
                          for p in pictures))
    # a column of the user's CSV named like markup is text, not an element
    assert "<img src=x onerror=alert(1)>" in page.find("#tab-report").text
    assert page.finds('img[src="x"]') == []
    link = page.find("a[href^='/api/report/page.html']")
    assert link.get_attribute("target") == "_blank" and "run=tables%2Fctgan" in link.get_attribute("href")
    page.shot("report")
    page.driver.execute_script("arguments[0].scrollIntoView()", pictures[1])
    page.shot("report-pictures")
    assert page.errors() == []
    # judged with held-out rows and a target (gankit synth-report --holdout --target)
    page.open("/run/tables/tvae/report")
    page.wait(lambda: page.finds("#efficacy"))
    assert "income (F1 of" in page.find("#efficacy").text
    assert "closer to training rows than to held-out ones" in page.find("#privacy").text
    page.shot("report-held-out")
    # a run without report.json: how to get one, with this run's own folder and table
    import shutil
    root = tmp_path / "root"
    shutil.copytree(served_runs / "tables" / "ctgan", root / "bare")
    (root / "bare" / "report.json").unlink()
    page.driver.get(f"{live_server(root)}/run/bare/report")
    how = page.wait(lambda: page.finds("#how"))[0].text
    assert f"--checkpoint {root.resolve() / 'bare'} " in how and "gankit synth-report" in how
    page.shot("report-missing")
    assert page.finds("#shapes") == [] and page.errors() == []


def test_a_flows_generate_tab_offers_its_sampling_settings_and_not_its_likelihoods(
        browser, live_server, tmp_path):
    import gankit

    from helpers import tiny_run
    root = tmp_path / "root"
    gankit.train(out=str(root / "cflow"), **tiny_run(model="cflow", steps=2, width=8,
                                                      offline=True))
    browser.get(f"{live_server(root)}/run/cflow/generate")
    wait = WebDriverWait(browser, 60, poll_frequency=0.1)
    grid = wait.until(lambda d: [g for g in d.find_elements(By.CSS_SELECTOR, "img.pick")
                                 if g.get_attribute("src")])[0]
    fields = {e.get_attribute("aria-label"): e for e in browser.find_elements(
        By.CSS_SELECTOR, "label input[aria-label], label select[aria-label]")}
    assert {"sample_steps", "solver", "sample_precision", "guidance"} <= set(fields)
    assert not {"likelihood", "likelihood_time"} & set(fields)   # no sample shows them
    assert fields["sample_steps"].get_attribute("value") == "6"
    assert fields["guidance"].get_attribute("value") == "1.25"
    first = grid.get_attribute("src")
    fields["sample_steps"].clear()
    fields["sample_steps"].send_keys("2")
    browser.find_element(By.CSS_SELECTOR, "button.primary").click()
    wait.until(lambda d: grid.get_attribute("src") != first)
    browser.save_screenshot(str(tmp_path / "generate-flow.png"))
    if os.environ.get("GANKIT_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["GANKIT_SCREENSHOTS"]) / "generate-flow.png"))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.get("about:blank")


# --- plain headless captures: no driver, the commands a user would type -------------------

def capture(*flags, timeout=60):
    """Headless chromium, one capture of a page, as a user runs it from a shell."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                               *map(str, flags)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_plain_headless_capture_shows_the_page_not_loading(served_runs, live_server, tmp_path):
    """`chromium --headless --dump-dom URL` captures the page at its load event, and
    `--screenshot` likewise: both show the drawn runs table and run page. With
    `--virtual-time-budget` a run page settles (no request stays open), even from an old
    #/run/ link."""
    base = live_server(served_runs)
    dom = capture("--dump-dom", f"{base}/").stdout
    assert "loading…" not in dom and 'class="run-name">gan/short<' in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom and '<img src="x"' not in dom
    dom = capture("--dump-dom", f"{base}/run/gan/short").stdout
    assert "loading…" not in dom and "step 20" in dom and "step_000020.png" in dom
    start = time.monotonic()
    dom = capture("--virtual-time-budget=5000", "--dump-dom", f"{base}/#/run/gan/short").stdout
    assert time.monotonic() - start < 30 and "step 20" in dom and "loading…" not in dom
    shot = tmp_path / "run.png"
    capture("--screenshot=" + str(shot), "--window-size=1000,800", f"{base}/run/gan/short")
    if os.environ.get("GANKIT_SCREENSHOTS"):
        shutil.copy(shot, Path(os.environ["GANKIT_SCREENSHOTS"]) / "plain-capture.png")
    picture = np.asarray(Image.open(shot).convert("L"))
    assert picture.shape == (800, 1000)
    # below the dark header bar: the charts and the sample grid (black cell borders), where
    # a page still loading is blank (measured: 1.1% of those pixels dark, loading 0%)
    assert (picture[100:] < 40).mean() > 0.005 and picture[100:].std() > 30
