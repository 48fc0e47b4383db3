"""Render a run directory's report: papermill runs a notebook template, nbconvert makes HTML.

``render_report(run_dir)`` picks the template for the probe's kind (``fairness`` or
``robustness``, or the probe's ``report.notebooks``), executes it on the run directory and
writes ``report.ipynb`` and a self-contained ``report.html`` (figures embedded as base64 PNG,
code hidden, no external scripts), plus ``model_card.md``. Results are never touched: when a
cell fails, the partially executed notebook is kept as ``report.ipynb`` for debugging, no
``report.html`` is written, and a :class:`~audit.errors.DataError` names the failing cell.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import audit
from audit.errors import EXIT_OK, DataError, UserError
from audit.registry import did_you_mean
from audit.results import atomic_write, check_run_dir, read_manifest

REPORT_NOTEBOOK = "report.ipynb"
REPORT_HTML = "report.html"
#: Template file per probe kind.
TEMPLATES = {"fairness": "fairness_report.ipynb", "robustness": "robustness_report.ipynb"}
KERNEL = "python3"
#: Seconds one cell may run before the report is abandoned.
CELL_TIMEOUT = 600

# Anything that could make the HTML fetch from the network when opened: scripts with a remote
# or empty src, scripts importing from a URL (nbconvert's mermaid loader), remote stylesheets.
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
_SRC = re.compile(r"\bsrc\s*=\s*(['\"]?)([^'\"\s>]*)\1", re.I)
_REMOTE = re.compile(r"(?:https?:)?//", re.I)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*['\"]?(?:https?:)?//[^>]*>", re.I)


def notebook_dir() -> Path:
    """The folder holding the templates: the repo's ``notebooks/`` in a source checkout, else
    the copy installed inside the package (``audit/notebooks/``)."""
    package = Path(audit.__file__).resolve().parent
    for folder in (package.parent / "notebooks", package / "notebooks"):
        if all((folder / name).is_file() for name in TEMPLATES.values()):
            return folder
    raise DataError(
        "the report notebook templates are missing "
        f"(looked in {package.parent / 'notebooks'} and {package / 'notebooks'})",
        fix="reinstall the package (pip install -e .); the templates ship as package data",
    )


def templates_for(run_dir: Path, kind: str | None = None) -> list[Path]:
    """Template paths for a run: ``kind`` if given, else the probe's ``report.notebooks``, else
    the one for the probe's kind."""
    folder = notebook_dir()
    if kind is None:
        probe = read_manifest(run_dir).get("probe") or {}
        chosen = ((probe.get("resolved") or {}).get("report") or {}).get("notebooks")
        if chosen:
            base = Path(str(probe.get("path") or ".")).parent
            return [_named_template(folder, str(name), base) for name in chosen]
        kind = str(probe.get("kind") or "fairness")
    if kind not in TEMPLATES:
        raise UserError(f"unknown report kind '{kind}'{did_you_mean(kind, list(TEMPLATES))}",
                        fix=f"use one of {', '.join(TEMPLATES)}")
    return [folder / TEMPLATES[kind]]


def _named_template(folder: Path, name: str, base: Path) -> Path:
    """A template by kind (``fairness``), or the notebook path the probe's loader resolved
    (relative paths are relative to the probe file's folder ``base``). Nothing else is
    searched: only what the validated probe names is executed."""
    if name in TEMPLATES:
        return folder / TEMPLATES[name]
    path = base / name
    if path.is_file():
        return path
    raise UserError(f"report notebook '{name}' not found (looked for {path})"
                    f"{did_you_mean(name, list(TEMPLATES))}",
                    fix=f"set report.notebooks in the probe to one of {', '.join(TEMPLATES)} "
                        "or to the path of a .ipynb relative to the probe file")


def _output_names(index: int, template: Path) -> tuple[str, str]:
    if index == 0:
        return REPORT_NOTEBOOK, REPORT_HTML
    stem = template.stem.removesuffix("_report")
    return f"report_{stem}.ipynb", f"report_{stem}.html"


def _first_line(source: str) -> str:
    lines = [ln.strip() for ln in source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return lines[0] if lines else source.strip()[:80]


def _literal(path: Path) -> str:
    """A path papermill will not format: it calls ``path.format(**parameters)`` on both
    notebook paths, so a brace in a folder or probe name (``/tmp/exp{1}``) would be read as a
    replacement field. Doubled braces format back to the original path."""
    return str(path).replace("{", "{{").replace("}", "}}")


def _execute(template: Path, out: Path, parameters: Mapping[str, Any]) -> None:
    """Run ``template`` with papermill into ``out`` (atomically, also on failure)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".ipynb", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        papermill.execute_notebook(
            _literal(template), _literal(tmp), parameters=dict(parameters), kernel_name=KERNEL,
            progress_bar=False, log_output=False, execution_timeout=CELL_TIMEOUT,
            # the kernel's start-up warnings (e.g. unencrypted local TCP) are noise here
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as exc:
        _keep_partial(tmp, out)
        lines = [ln.strip() for ln in str(exc.evalue).splitlines() if ln.strip()]
        inner_fix = [ln.removeprefix("fix:").strip() for ln in lines if ln.startswith("fix:")]
        index = _error_cell(out)
        raise DataError(
            f"report notebook {template.name} failed in cell {exc.cell_index if index is None else index} "
            f"(In [{exc.exec_count}]: '{_first_line(exc.source)}'): {exc.ename}: "
            f"{lines[0] if lines else ''}",
            file=str(out),
            fix="; ".join([*inner_fix, f"the partial notebook with the traceback is {out} (the "
                           "results themselves are intact); re-render with: python -m audit "
                           f"report {out.parent}"]),
        ) from None
    except Exception as exc:  # kernel could not start or died, cell timeout, bad template
        _keep_partial(tmp, out)
        raise DataError(
            f"could not execute report notebook {template.name}: {type(exc).__name__}: {exc}",
            fix="check that ipykernel is installed in this environment (pip install ipykernel) "
                "and that the template is a valid notebook",
        ) from None
    else:
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _error_cell(notebook: Path) -> int | None:
    """Index, in the saved notebook (papermill adds banner cells), of the cell that raised."""
    import nbformat

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except Exception:  # the partial notebook is a debugging aid; its absence is not an error
        return None
    for i, cell in enumerate(nb.cells):
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return i
    return None


def _keep_partial(tmp: Path, out: Path) -> None:
    """Keep a failed run's notebook as ``out``; drop the HTML, which would no longer match."""
    if tmp.exists() and tmp.stat().st_size:
        os.replace(tmp, out)
    out.with_suffix(".html").unlink(missing_ok=True)


def to_html(notebook: Path) -> str:
    """Self-contained HTML of an executed notebook: no code, no remote scripts or styles."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(notebook), as_version=4)
    _images_with_alt(nb)
    exporter = HTMLExporter(exclude_input=True, mathjax_url="", require_js_url="")
    body, _ = exporter.from_notebook_node(nb)
    return strip_remote(body)


def _images_with_alt(nb: Any) -> None:
    """Give each PNG figure its alt text in the HTML: the lab template ignores the ``alt``
    metadata that :func:`audit.reporting.display.show` records, so the figure goes out as an
    ``<img>`` that carries it (and nbconvert has no missing alt text to warn about)."""
    from audit.reporting.escape import html_text

    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            png = data.get("image/png")
            alt = ((out.get("metadata") or {}).get("image/png") or {}).get("alt") \
                or (out.get("metadata") or {}).get("alt") or "figure"
            if png:
                out["data"] = {"text/html": f'<img src="data:image/png;base64,{png.strip()}" '
                                            f'alt="{html_text(alt)}"/>'}


def strip_remote(html: str) -> str:
    """Remove scripts that load or import from elsewhere and remote ``<link>`` tags."""
    def keep(m: re.Match[str]) -> str:
        src = _SRC.search(m.group(1))
        if src is not None and (not src.group(2) or _REMOTE.match(src.group(2))):
            return ""
        if re.search(r"import\s*\(\s*['\"](?:https?:)?//", m.group(2)):
            return ""
        return m.group(0)

    return _REMOTE_LINK.sub("", _SCRIPT.sub(keep, html))


def _write_text(path: Path, text: str) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)


def render_report(run_dir: str | Path, kind: str | None = None, *,
                  parameters: Mapping[str, Any] | None = None, model_card: bool = True) -> Path:
    """Execute the report notebook(s) on a run directory and write ``report.html``.

    Args:
        run_dir: a run directory (``manifest.json`` and ``metrics.csv`` at least).
        kind: ``fairness`` or ``robustness``; default: the probe's ``report.notebooks``, else
            the template for the probe's kind.
        parameters: display options for the notebooks' ``parameters`` cell (``dpi``,
            ``max_rows``); ``run_dir`` is always set.
        model_card: also write ``model_card.md`` (see :func:`audit.model_card.write_model_card`).

    Returns:
        Path of ``report.html`` (of the first notebook when the probe asks for several; the
        others go to ``report_<name>.ipynb/.html``).

    Raises:
        UserError: not a run directory, or an unknown kind/notebook.
        DataError: a notebook cell failed (the message names it; ``report.ipynb`` keeps the
            partial notebook and no HTML is written), or the kernel could not start.
    """
    run_dir = check_run_dir(Path(run_dir)).resolve()
    templates = templates_for(run_dir, kind)
    params = {**dict(parameters or {}), "run_dir": str(run_dir)}
    first: Path | None = None
    for i, template in enumerate(templates):
        nb_name, html_name = _output_names(i, template)
        _execute(template, run_dir / nb_name, params)
        _write_text(run_dir / html_name, to_html(run_dir / nb_name))
        first = first or run_dir / html_name
    if model_card:
        from audit.model_card import write_model_card

        write_model_card(run_dir)
    assert first is not None
    return first


def report_main(run_dir: str | Path) -> int:
    """``python -m audit report RUN_DIR``: re-render the report and model card from the files.

    Nothing is recomputed. Returns 0; errors propagate as :class:`~audit.errors.AuditError`
    (exit 2 or 3) for the CLI to print.
    """
    html = render_report(run_dir)
    print(f"wrote {html}")
    print(f"wrote {html.parent / 'model_card.md'}")
    return EXIT_OK
