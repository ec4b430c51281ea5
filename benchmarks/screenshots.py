"""The pictures of `gankit serve`, taken in headless Debian chromium.

    python benchmarks/screenshots.py ROOT [--out docs/serve]

ROOT holds trained runs (e.g. the recipes' runs/recipes); the script serves it, starts a
short `gankit train` of the guide's gan in ROOT/live-demo so the training tab is caught
while it trains, and photographs: the runs list, that live training tab, a conditional
model's grid with a walk, an inpainting, a drawn digit classified and an evaluation.
--gan, --cgan, --inpaint and --cvae name the runs to use (paths under ROOT).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root")
    p.add_argument("--out", default="docs/serve")
    p.add_argument("--cgan", default="cgan/seed0")
    p.add_argument("--inpaint", default="dcgan/seed0")
    p.add_argument("--cvae", default="cvae/seed0")
    args = p.parse_args()
    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    shutil.rmtree(root / "live-demo", ignore_errors=True)
    server = subprocess.Popen([sys.executable, "-m", "gankit", "serve", str(root), "--port", str(port)])
    train = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--steps", "6000", "--out",
                              str(root / "live-demo"), "--quiet", "--offline"])
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-sync", "--disable-component-update",
                 "--no-first-run", "--window-size=1280,900", "--hide-scrollbars"):
        options.add_argument(flag)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    wait = lambda f, t=120: WebDriverWait(d, t, 0.2).until(lambda _: f())   # noqa: E731
    find = lambda css: d.find_elements(By.CSS_SELECTOR, css)               # noqa: E731
    try:
        time.sleep(3)
        while not (root / "live-demo" / "metrics.csv").is_file():
            time.sleep(0.5)
        d.get(base + "/run/live-demo")
        time.sleep(25)                     # the curves grow meanwhile
        d.save_screenshot(str(out / "training.png"))

        d.get(base + "/")
        wait(lambda: find("tr[data-run]"))
        time.sleep(2)
        d.save_screenshot(str(out / "runs.png"))

        d.get(base + f"/run/{args.cgan}/generate")
        grid = wait(lambda: [g for g in find("img.pick") if g.get_attribute("src")])[0]
        wait(lambda: d.execute_script("return arguments[0].naturalWidth", grid) > 0)
        w, hgt = grid.size["width"], grid.size["height"]
        for fx, fy in ((-0.42, 0.35), (0.42, 0.35)):   # the row of 8s, first to last
            ActionChains(d).move_to_element_with_offset(grid, int(fx * w), int(fy * hgt)).click().perform()
        wait(lambda: find(".walk canvas"))
        slider = find(".walk input[type=range]")[0]
        ActionChains(d).click_and_hold(slider).move_by_offset(-20, 0).release().perform()
        time.sleep(1)
        d.set_window_size(1280, 1250)
        d.execute_script("window.scrollTo(0, 0)")
        d.save_screenshot(str(out / "generate.png"))
        d.set_window_size(1280, 900)

        d.get(base + f"/run/{args.inpaint}/inpaint")
        wait(lambda: "held-out image" in find("#tab-inpaint")[0].text)
        time.sleep(0.5)
        mask = find("#mask")[0]
        m = mask.size["width"]
        d.execute_script("arguments[0].value = 'box'", find("select[aria-label=tool]")[0])
        (ActionChains(d).move_to_element_with_offset(mask, int(-0.3 * m), int(-0.05 * m))
         .click_and_hold().move_by_offset(int(0.6 * m), int(0.3 * m)).release().perform())
        find("#fill")[0].click()
        wait(lambda: find("#filled"))
        time.sleep(0.5)
        d.save_screenshot(str(out / "inpaint.png"))

        d.get(base + f"/run/{args.cvae}/classify")
        pad = wait(lambda: find("#pad"))[0]
        s = pad.size["width"]
        # a "7": the bar, then the stem
        (ActionChains(d).move_to_element_with_offset(pad, int(-0.25 * s), int(-0.3 * s)).click_and_hold()
         .move_by_offset(int(0.25 * s), 0).move_by_offset(int(0.25 * s), 0)
         .move_by_offset(int(-0.12 * s), int(0.3 * s)).move_by_offset(int(-0.12 * s), int(0.3 * s))
         .release().perform())
        wait(lambda: len(find("#bars .barrow")) == 10)
        time.sleep(1.5)
        d.save_screenshot(str(out / "classify.png"))

        d.get(base + f"/run/{args.cvae}/evaluate")
        wait(lambda: find("#tab-evaluate button.primary"))[0].click()
        wait(lambda: find(".job-phase") and "sampling" in find(".job-phase")[0].text, 300)
        d.save_screenshot(str(out / "evaluate-progress.png"))
        wait(lambda: find("#scores") and find("#scores")[0].text, 600)
        d.save_screenshot(str(out / "evaluate.png"))
    finally:
        d.quit()
        for proc in (train, server):
            proc.send_signal(2)
            proc.wait(30)
        shutil.rmtree(root / "live-demo", ignore_errors=True)
    print(f"wrote {', '.join(sorted(p.name for p in out.glob('*.png')))} to {out}")


if __name__ == "__main__":
    main()
