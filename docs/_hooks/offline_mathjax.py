"""MkDocs hook: serve MathJax from the built site, so the docs render offline.

MathJax 3 is taken at build time from the PyPI package `django-static-mathjax` (part
of the `docs` extra; it ships MathJax's `es5` build as package data, Apache-2.0) and
copied into `<site>/assets/mathjax/`; `mkdocs.yml` loads
`assets/mathjax/tex-mml-chtml.js` by a relative path. No third-party JavaScript is
kept in the repository and no page refers to a CDN.

Copied: the combined `tex-mml-chtml.js` component and what it loads on demand (TeX
extensions for `\\require`/autoload, the CommonHTML woff fonts, the context menu and
the accessibility components with their speech rules), plus MathJax's licence; the
SVG output and the other combined components are left out.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError


_DISTRIBUTION = "django-static-mathjax"
_ES5 = Path("mathjax", "static", "mathjax", "es5")
_TARGET = Path("assets", "mathjax")
_FILES = ("tex-mml-chtml.js",)
_DIRS = ("input", "output/chtml", "ui", "a11y", "sre", "adaptors")


def _mathjax_root() -> Path:
    try:
        dist = importlib.metadata.distribution(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise PluginError(
            f"The docs bundle MathJax from the Python package {_DISTRIBUTION!r}, which "
            'is not installed. Install the docs extra: pip install -e ".[docs]".'
        ) from None
    root = Path(str(dist.locate_file(_ES5)))
    missing = [f for f in _FILES if not (root / f).is_file()]
    if missing:
        raise PluginError(
            f"{_DISTRIBUTION} {dist.version} has no {', '.join(missing)} under {root}; "
            f"reinstall it: pip install --force-reinstall {_DISTRIBUTION}."
        )
    return root


def on_config(config):
    """Fail before building when MathJax is not available."""
    _mathjax_root()
    return config


def on_post_build(config) -> None:
    """Copy MathJax into `<site_dir>/assets/mathjax/`."""
    root = _mathjax_root()
    target = Path(config["site_dir"]) / _TARGET
    target.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        shutil.copy2(root / name, target / name)
    for name in _DIRS:
        if (root / name).is_dir():
            shutil.copytree(root / name, target / name, dirs_exist_ok=True)
    licence = root.parent / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, target / "LICENSE")
