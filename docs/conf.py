"""Sphinx configuration of the ecgcohort site (``make docs``; built with ``-W --keep-going``).

The site builds offline: no intersphinx (its inventory fetch would warn), MathJax copied into
the build by sphinx-mathjax-offline, furo's own assets and the system fonts, Sphinx's local
search index. tests/test_docs.py checks that no built page loads a script, stylesheet or font
from elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "ecgcohort"
author = "the ecgcohort developers"
copyright = "2026, the ecgcohort developers"

extensions = [
    "myst_nb",  # MyST Markdown pages and the tutorials' recorded notebooks (not executed here)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 served from _static/mathjax, never from a CDN
    "sphinxcontrib.bibtex",
    "sphinx_copybutton",
    "ecgcohort_docs",  # the stage pages' rule tables, read from workflow/rules/*.smk
]

# Markdown everywhere; the tutorials are Python scripts in percent format (DOLFINx-style demos),
# run by pytest against a workflow run; their pages are the notebooks recorded from them with
# their outputs (python -m ecgcohort.tutorial_outputs record), not executed at build time.
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
nb_execution_mode = "off"
exclude_patterns = ["_build", "conf.py", "_ext", "results/**/*.md", "tutorials/*.py", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 4
myst_footnote_transition = False

bibtex_bibfiles = ["refs.bib"]
bibtex_default_style = "plain"
bibtex_reference_style = "author_year"

# A broken link, label or citation key warns (and -W fails the build) whatever nitpicky says;
# nitpicky would also demand a target for every name the API docstrings mention in passing
# (internal helpers the API page does not document), so it stays off (tests/test_docs.py shows
# a broken link, label and citation each failing a scratch build).
nitpicky = False

autodoc_typehints = "none"  # signatures name the types; the docstrings give units and shapes
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}

html_theme = "furo"
html_title = "ecgcohort"
html_static_path = ["_static"]
html_css_files = ["ecgcohort.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
html_last_updated_fmt = None
