"""Build the site with Zensical, Material for MkDocs' successor: ``make zensical``.

Material for MkDocs reaches its end of life on 2027-05-05 and MkDocs 1.x is no
longer maintained, so the site must keep building on Zensical. Zensical reads
``mkdocs.yml`` and runs the Python-Markdown extensions, so the whole example
pipeline (``sitebuild.examples``, ``sitebuild.pages``) runs there as it is. It
runs no MkDocs hooks, and it brings its own theme and script. So the build uses
``mkdocs.yml`` less three settings that belong to the MkDocs build:

* ``theme.custom_dir``: ``overrides/`` holds Material 9.8's page template without
  Material's script bundle; Zensical's template differs, and its bundle is what
  draws its search, palette switch and copy buttons;
* ``hooks``: Zensical ignores them (they add MkDocs-only work: see
  ``sitebuild/hooks.py``);
* ``site.js``: it stands in for Material's bundle in the MkDocs build, and would
  fight Zensical's. ``zensical.js`` takes its place, with ``zensical.css``: what
  Zensical's theme lacks for keyboard and screen-reader users (focusable wide
  blocks, a name for every navigation landmark) and for contrast.

Zensical wants ``site_dir`` inside the project, so the derived configuration and
the build live in a fresh folder of the repository, and the site is moved to
where it was asked for.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sitebuild.facts import ROOT

# Each MkDocs-only setting, and what takes its place in the Zensical build.
REPLACED = (
    (re.compile(r"^  custom_dir: .*\n", re.MULTILINE), ""),
    (re.compile(r"^hooks:\n(?:  - .*\n)+", re.MULTILINE), ""),
    (re.compile(r"^  - path: assets/javascripts/site\.js\n", re.MULTILINE),
     "  - path: assets/javascripts/zensical.js\n"),
    (re.compile(r"^  - assets/stylesheets/extra\.css\n", re.MULTILINE),
     "  - assets/stylesheets/extra.css\n  - assets/stylesheets/zensical.css\n"),
)


def config(text: str, site_dir: str) -> str:
    """``mkdocs.yml`` as Zensical builds it: the MkDocs-only settings left out or
    replaced (``zensical.js`` and ``zensical.css`` in place of ``site.js``)."""
    for pattern, replacement in REPLACED:
        text, found = pattern.subn(replacement, text)
        if found != 1:
            raise ValueError(f"mkdocs.yml: expected one match of {pattern.pattern!r}")
    return re.sub(r"^docs_dir: .*$", f"docs_dir: docs\nsite_dir: {site_dir}", text,
                  count=1, flags=re.MULTILINE)


def build(out: Path) -> subprocess.CompletedProcess[str]:
    """Build the site with Zensical into ``out`` (replaced); the process, for its output."""
    with tempfile.TemporaryDirectory(prefix=".zensical-", dir=ROOT) as work:
        name = Path(work).name
        derived = ROOT / f"{name}.yml"
        derived.write_text(config((ROOT / "mkdocs.yml").read_text(encoding="utf-8"),
                                  f"{name}/site"), encoding="utf-8")
        try:
            done = subprocess.run([sys.executable, "-m", "zensical", "build", "--clean", "-f",
                                   derived.name], cwd=ROOT, capture_output=True, text=True,
                                  timeout=1200, check=False,
                                  env={**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)})
        finally:
            derived.unlink()
        if done.returncode == 0:
            shutil.rmtree(out, ignore_errors=True)
            shutil.move(Path(work) / "site", out)
    return done


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--site-dir", default="site-zensical", help="where to write the site")
    args = parser.parse_args(argv)
    done = build(Path(args.site_dir).resolve())
    print(done.stdout + done.stderr, end="")
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
