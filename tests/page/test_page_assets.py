"""The web page's assets ship inside the package and fetch nothing from elsewhere: no CDN,
no external font, every asset the page names exists, and the API key never reaches
browser storage."""

from __future__ import annotations

import re
import sys
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "plait"
STATIC = SRC / "serve" / "static"
ASSETS = ("index.html", "app.js", "style.css")


def test_every_page_asset_ships_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["plait"]
    shipped = sorted(p.name for p in STATIC.iterdir())
    assert set(ASSETS) <= set(shipped), shipped
    for name in shipped:
        relative = (STATIC / name).relative_to(SRC).as_posix()
        assert any(fnmatch(relative, pattern) for pattern in patterns), relative


def test_the_package_resources_hold_the_page() -> None:
    static = files("plait").joinpath("serve", "static")
    for name in ASSETS:
        assert static.joinpath(name).read_text(encoding="utf-8").strip(), name


def test_the_page_names_only_its_own_assets() -> None:
    html = (STATIC / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert references, "the reader found no src/href in index.html"
    for reference in references:
        if reference.startswith("static/"):
            assert (STATIC / reference.removeprefix("static/")).is_file(), reference
        else:  # service routes and the empty inline icon; nothing absolute
            assert reference in {"docs", "v1/card", "data:,"}, reference


def test_no_asset_fetches_from_another_host() -> None:
    for name in ASSETS:
        text = (STATIC / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text and "@font-face" not in text, name


def test_the_api_key_stays_out_of_browser_storage() -> None:
    script = (STATIC / "app.js").read_text()
    # the comment at the top promises it; the code must not use any of them
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("//"))
    for storage in ("localStorage", "sessionStorage", "document.cookie", "indexedDB"):
        assert storage not in code, storage
