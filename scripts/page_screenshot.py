"""Write the README's screenshots of the web page (docs/images/page.png, page-aligned.png).

They are taken by the browser test itself (tests/page/test_page_browser.py), so the picture
shows what the test checked: a real server, headless Chromium, and here the demo's fusion
model: MODEL if given (a model trained on the demo data, e.g. `plait demo`'s
plait-demo/runs/fusion-gated/model), else one trained first with `plait demo`'s config
(900 rows, 10 epochs; about half a minute on 2 idle cores). Needs chromium and
chromedriver (Debian: `apt-get install chromium chromium-driver`) and `plait[ship,dev]`.

    .venv/bin/python scripts/page_screenshot.py [MODEL]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"


def main(argv: list[str]) -> int:
    env = {**os.environ, "PLAIT_PAGE_SCREENSHOT_DIR": str(OUT), "PLAIT_REQUIRE_BROWSER": "1"}
    if argv:
        env["PLAIT_PAGE_MODEL"] = str(Path(argv[0]).resolve())
    test = ROOT / "tests" / "page" / "test_page_browser.py"
    code = subprocess.call([sys.executable, "-m", "pytest", str(test), "-q"], cwd=ROOT, env=env)
    if code == 0:
        print(f"wrote {OUT / 'page.png'} and {OUT / 'page-aligned.png'}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
