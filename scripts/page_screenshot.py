"""Write the README's screenshots of the web page (docs/images/page.png, page-aligned.png).

They are taken by the browser test itself (tests/page/test_page_browser.py), so the picture
shows what the test checked, with a real server and headless Chromium. The classifier is
--model if given (a model trained on the demo data, e.g. `plait demo`'s
plait-demo/runs/fusion-gated/model), else one trained first with `plait demo`'s config
(900 rows, 10 epochs: about half a minute on 2 idle cores). The aligned page uses
--aligned and --index if given (e.g. `plait demo retrieval`'s model and index), else the
test's tiny untrained model. Needs chromium and chromedriver (Debian: `apt-get install
chromium chromium-driver`) and `plait[ship,dev]`.

    .venv/bin/python scripts/page_screenshot.py --model plait-demo/runs/fusion-gated/model \
        --aligned plait-demo-retrieval/runs/demo-retrieval/model \
        --index plait-demo-retrieval/index
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a classifier trained on the demo data")
    parser.add_argument("--aligned", type=Path, help="an aligned caption <-> image model")
    parser.add_argument("--index", type=Path, help="an index built with --aligned")
    args = parser.parse_args(argv)
    env = {**os.environ, "PLAIT_PAGE_SCREENSHOT_DIR": str(OUT), "PLAIT_REQUIRE_BROWSER": "1"}
    for name, value in (("MODEL", args.model), ("ALIGNED_MODEL", args.aligned)):
        if value is not None:
            env[f"PLAIT_PAGE_{name}"] = str(value.resolve())
    if args.index is not None:
        env["PLAIT_PAGE_INDEX"] = str(args.index.resolve())
    test = ROOT / "tests" / "page" / "test_page_browser.py"
    code = subprocess.call([sys.executable, "-m", "pytest", str(test), "-q"], cwd=ROOT, env=env)
    if code == 0:
        print(f"wrote {OUT / 'page.png'} and {OUT / 'page-aligned.png'}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
