"""The documentation site (docs/, `make docs`): it builds with every warning an error, a broken
cross-reference or citation fails that build, no built page loads anything from another host,
its generated pages are what their sources give, and the README stays a short entry point.
The tutorials themselves run in tests/test_workflow_anatomy.py, after a real two-patient run."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ecgcohort import readme_results
from ecgcohort.config import load_schema, schema_markdown
from ecgcohort.reruns import load_matrix, matrix_markdown

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

#: Attributes through which a page loads a resource: scripts, stylesheets, fonts, images, frames.
LOADING = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
           ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data")}
#: <link rel=...> values that only name a page rather than load one.
NAVIGATION_RELS = {"index", "search", "next", "prev", "canonical", "author", "help", "license", "copyright"}
REMOTE = re.compile(r"^(https?:)?//", re.I)


def sphinx_build(source: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html",
                           str(source), str(out)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built once for this module, strictly (-W --keep-going), from scratch (-E)."""
    out = tmp_path_factory.mktemp("site") / "html"
    built = sphinx_build(DOCS, out)
    assert built.returncode == 0, f"the strict docs build failed:\n{built.stdout[-3000:]}\n{built.stderr[-5000:]}"
    return out


def test_strict_build_passes_and_has_every_section(site):
    for page in ("index.html", "search.html", "searchindex.js", "getting-started/install.html",
                 "tutorials/open_cohort.html", "how-to/configure.html", "how-to/slurm.html",
                 "reference/stages/meshing.html", "reference/data-format.html", "config.html",
                 "reference/api.html", "methods/physiology.html", "methods/bibliography.html",
                 "results/verification.html", "results/validation.html", "results/benchmarks.html",
                 "changelog.html", "limitations.html"):
        assert (site / page).exists(), page
    # the generated reference tables are there: a rule of the meshing stage, a variable of the store
    assert "mesh_anatomy" in (site / "reference/stages/meshing.html").read_text()
    data_format = (site / "reference/data-format.html").read_text()
    assert "grad_lead_field" in data_format and "ohm/m" in data_format
    # a citation resolved into the bibliography
    assert "Durrer" in (site / "methods/bibliography.html").read_text()


class _Loads(HTMLParser):
    def __init__(self):
        super().__init__()
        self.loaded: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self._in_style = tag == "style"
        if tag == "link" and set((attributes.get("rel") or "").lower().split()) <= NAVIGATION_RELS:
            return
        for element, attribute in LOADING:
            if tag == element and attributes.get(attribute):
                self.loaded.append(attributes[attribute])
        if attributes.get("style"):
            self.styles.append(attributes["style"])

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in_style = False


def remote_loads(html: str) -> list[str]:
    """What a page loads from another host: scripts, stylesheets, fonts, images, CSS url()/@import."""
    parser = _Loads()
    parser.feed(html)
    urls = parser.loaded + [found for style in parser.styles for found in re.findall(r"url\(['\"]?([^'\")]+)", style)]
    return [url for url in urls if REMOTE.match(url.strip())]


def test_remote_loads_are_found():
    page = ('<script src="https://cdn.example/mathjax.js"></script><link rel="stylesheet" href="//fonts.example/x.css">'
            '<link rel="next" href="https://example.org/next"><style>@font-face{src:url(https://f.example/a.woff2)}</style>'
            '<script src="_static/local.js"></script>')
    assert remote_loads(page) == ["https://cdn.example/mathjax.js", "//fonts.example/x.css", "https://f.example/a.woff2"]


def test_no_built_page_loads_anything_from_another_host(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 30
    for page in pages:
        assert remote_loads(page.read_text()) == [], page.relative_to(site)
    for stylesheet in site.glob("_static/**/*.css"):
        css = stylesheet.read_text(errors="replace")
        remote = [url for url in re.findall(r"(?:url\(|@import\s+)['\"]?([^'\")\s;]+)", css) if REMOTE.match(url)]
        assert remote == [], stylesheet.relative_to(site)
    # MathJax is served from the build itself, fonts included
    physiology = (site / "methods/ecg.html").read_text()
    assert 'src="../_static/mathjax/tex-chtml.js"' in physiology
    assert (site / "_static/mathjax/tex-chtml.js").stat().st_size > 500_000
    assert list(site.glob("_static/mathjax/output/chtml/fonts/woff-v2/*.woff"))


def _scratch_site(tmp_path: Path, page: str) -> Path:
    """A one-page site with this site's configuration, extensions and bibliography."""
    scratch = tmp_path / "docs"
    scratch.mkdir(parents=True)
    shutil.copy(DOCS / "conf.py", scratch)
    shutil.copy(DOCS / "refs.bib", scratch)
    shutil.copytree(DOCS / "_ext", scratch / "_ext")
    shutil.copytree(DOCS / "_static", scratch / "_static")
    (scratch / "index.md").write_text("# Scratch\n\n(a-target)=\n## A target\n\n" + page
                                      + "\n## References\n\n```{bibliography}\n```\n")
    return scratch


#: Each break, and the name the strict build's failure must give for it.
BREAKS = {"See [a page that does not exist](no-such-page.md).\n": "no-such-page",
          "See {ref}`no-such-label`.\n": "no-such-label",
          "As measured {cite:p}`no_such_key_1970`.\n": "no_such_key_1970"}


def test_a_broken_reference_or_citation_fails_the_strict_build(tmp_path):
    good = "See [the target](#a-target), {ref}`a-target` and {cite:p}`durrer1970`.\n"
    fine = sphinx_build(_scratch_site(tmp_path / "good", good), tmp_path / "good-html")
    assert fine.returncode == 0, fine.stderr[-3000:]
    # one page with every break: --keep-going reports each as its own warning, and any one
    # warning fails a -W build
    failed = sphinx_build(_scratch_site(tmp_path / "bad", good + "".join(BREAKS)), tmp_path / "bad-html")
    assert failed.returncode != 0, failed.stderr[-3000:]
    warnings = [line for line in failed.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    for named in BREAKS.values():
        assert sum(named in line for line in warnings) >= 1, (named, failed.stderr[-3000:])


def test_generated_pages_are_what_their_sources_give():
    # the configuration reference is the schema rendered (also tests/test_config.py)
    assert (DOCS / "config.md").read_text() == schema_markdown(load_schema(REPO / "workflow/schemas/config.schema.yaml"))
    # what re-runs when a setting changes is the re-run matrix the workflow test checks
    assert (DOCS / "reference/reruns.md").read_text() == matrix_markdown(load_matrix(REPO / "workflow/rerun_matrix.yaml"))
    # every results table on the site is its recorded run, with its provenance line
    pages = readme_results.pages_with_blocks()
    shown = {page.relative_to(REPO).as_posix() for page in pages}
    assert {"docs/results/verification.md", "docs/results/validation.md", "docs/results/benchmarks.md"} <= shown
    for page in pages:
        assert readme_results.stale_blocks(page.read_text()) == [], \
            f"{page}: run `python -m ecgcohort.readme_results update`"
    validation = (DOCS / "results/validation.md").read_text()
    assert "<!-- results study-realism ecg/realism.md -->" in validation
    assert "Recorded run `study-realism`: commit `" in validation


def test_readme_is_a_short_entry_point_whose_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert "make run" in readme and "make test" in readme and "results/" in readme
    for target in re.findall(r"\]\(((?!https?:)[^)#]+)", readme):
        assert (REPO / target).exists(), target


def test_how_to_change_patients_mesh_and_cluster_is_one_click_from_home(site):
    home = (site / "index.html").read_text()
    for link, anchor in (("how-to/configure.html", "the-number-of-patients"),
                         ("how-to/configure.html", "the-mesh-size"), ("how-to/slurm.html", None)):
        target = f'href="{link}#{anchor}"' if anchor else f'href="{link}"'
        assert target in home, target
        if anchor:
            assert f'id="{anchor}"' in (site / link).read_text(), anchor


def test_tutorials_are_percent_scripts_that_assert_their_result():
    import jupytext

    tutorials = sorted((DOCS / "tutorials").glob("*.py"))
    assert {path.stem for path in tutorials} == {"tiny_cohort", "open_cohort", "load_release", "surrogate", "convergence"}
    for tutorial in tutorials:
        notebook = jupytext.read(tutorial, fmt="py:percent")
        kinds = [cell.cell_type for cell in notebook.cells]
        assert kinds[0] == "markdown" and notebook.cells[0].source.startswith("# "), tutorial.name
        assert "code" in kinds and "assert " in notebook.cells[-1].source, tutorial.name


def test_tutorial_pages_are_their_scripts_with_recorded_outputs(site, tmp_path):
    import nbformat

    from ecgcohort.tutorial_outputs import PROVENANCE_TAG, stale_tutorials

    assert stale_tutorials() == []
    for name in ("open_cohort", "tiny_cohort", "load_release", "surrogate", "convergence"):
        notebook = nbformat.read(str(DOCS / f"tutorials/{name}.ipynb"), as_version=4)
        provenance = [cell for cell in notebook.cells if PROVENANCE_TAG in cell.metadata.get("tags", [])]
        assert len(provenance) == 1 and "commit `" in provenance[0].source, name
        printed = [output for cell in notebook.cells for output in cell.get("outputs", [])]
        assert printed, f"{name}: recorded without outputs"
    # the page shows what the cells drew: the 12-lead ECG and the lead field as images
    page = (site / "tutorials/open_cohort.html").read_text()
    assert page.count("<img") >= 2 and "QRS peak in V5" in page
    # a script edited after its recording makes the check fail, naming the tutorial
    shutil.copytree(DOCS / "tutorials", tmp_path / "tutorials")
    script = tmp_path / "tutorials/convergence.py"
    script.write_text(script.read_text().replace("tolerance = 0.10", "tolerance = 0.05"))
    assert stale_tutorials(tmp_path / "tutorials") == [
        "convergence: convergence.ipynb was recorded from another version of convergence.py"]


def test_recording_tutorials_outside_a_run_folder_names_the_folder(tmp_path):
    from ecgcohort.tutorial_outputs import TutorialOutputsError, record_all

    with pytest.raises(TutorialOutputsError, match=f"{tmp_path} has no results/ folder"):
        record_all(tmp_path, command="make run")
    (tmp_path / "results").mkdir()
    with pytest.raises(TutorialOutputsError, match=r"no tutorial named \['no_such_tutorial'\]"):
        record_all(tmp_path, command="make run", names=["no_such_tutorial"])
