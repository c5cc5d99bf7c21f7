"""The report page: one self-contained ``index.html`` with relative links only (readable offline,
from a copy of the folder or from the MLflow artifact view)."""
from __future__ import annotations

import html
from pathlib import Path

from .figures import Figure
from .tables import Table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } .key, .meta th, .meta td { text-align: left; }
tbody tr:nth-child(even) { background: #fafafa; }
.scroll { overflow-x: auto; } .note { color: #8a5a00; font-style: italic; }
figure { margin: 0.5em 0 1.5em; } figure img { max-width: 100%; border: 1px solid #eee; }
nav a { margin-right: 1em; }
"""


def _section_id(title: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in title.lower()).strip("-")


def _meta(context: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in context.items())
    return f'<table class="meta">{rows}</table>'


def _table(table: Table, files: dict[str, Path], root: Path) -> str:
    links = " · ".join(f'<a href="{html.escape(files[f].relative_to(root).as_posix())}">{label}</a>'
                       for f, label in (("csv", "CSV"), ("md", "Markdown"), ("html", "HTML")))
    body = files["html"].read_text(encoding="utf-8")
    return (f'<h3 id="table-{table.name}">{html.escape(table.title)}</h3>\n<p>{links}</p>\n'
            f'<div class="scroll">{body}</div>')


def _figure(figure: Figure) -> str:
    title = html.escape(figure.title)
    if figure.path is None:
        return f'<h3>{title}</h3>\n<p class="note">Skipped: {html.escape(figure.note)}.</p>'
    src = html.escape(figure.path)
    return (f'<figure><h3>{title}</h3><a href="{src}"><img src="{src}" alt="{title}" loading="lazy"></a>'
            f'</figure>')


def write_index(out: Path, title: str, context: dict, tables: list[tuple[Table, dict[str, Path]]],
                sections: list[tuple[str, str, list[Figure]]], failures: list[tuple[str, str]]) -> Path:
    """``out/index.html``: the context, the tables, then each figure section (title, intro, figures);
    ``failures`` lists (run, first line of the error) for runs left out of the statistics."""
    root = out.resolve()
    nav = ['<a href="#tables">Tables</a>'] + [f'<a href="#{_section_id(name)}">{html.escape(name)}</a>'
                                              for name, _, _ in sections]
    parts = [f"<h1>{html.escape(title)}</h1>", f"<nav>{''.join(nav)}</nav>", _meta(context)]
    if failures:
        items = "".join(f"<li>{html.escape(run)}: {html.escape(error)}</li>" for run, error in failures)
        parts.append(f'<p class="note">{len(failures)} failed run(s), left out of every table and figure:</p>'
                     f"<ul>{items}</ul>")
    parts.append('<h2 id="tables">Tables</h2>')
    parts += [_table(table, files, root) for table, files in tables]
    for name, intro, figures in sections:
        parts.append(f'<h2 id="{_section_id(name)}">{html.escape(name)}</h2>')
        if intro:
            parts.append(f"<p>{html.escape(intro)}</p>")
        parts += [_figure(f) for f in figures] or ['<p class="note">Nothing to show for this sweep.</p>']
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
