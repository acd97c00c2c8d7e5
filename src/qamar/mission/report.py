"""A self-contained HTML report: sections of prose, tables and figures in one file.

Figures are embedded as base64 PNG so the report can be mailed or archived on its own.
Each analysis adds its own section; the pipeline writes the file once at the end.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from qamar import __version__

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1d2330;line-height:1.45}
h1{border-bottom:3px solid #2b5797;padding-bottom:.3em}h2{color:#2b5797;margin-top:2em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccd;padding:.3em .7em;text-align:left}
th{background:#eef2fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:.9em}
.assume{background:#fff8e6;border-left:4px solid #e0a800;padding:.5em 1em}
footer{margin-top:3em;color:#777;font-size:.85em}
"""


@dataclass
class Section:
    """One titled part of the report, built from HTML fragments."""

    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, paragraph: str) -> Section:
        """Add a paragraph of plain text (escaped)."""
        self.parts.append(f"<p>{html.escape(paragraph)}</p>")
        return self

    def table(self, rows: list[tuple[str, object]] | list[list[object]], header: list[str] | None = None) -> Section:
        """Add a table; numbers are right-aligned. ``rows`` are sequences of cells."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header) if header else ""
        body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
        self.parts.append(f"<table>{f'<tr>{head}</tr>' if head else ''}{body}</table>")
        return self

    def items(self, entries: list[str], css_class: str = "") -> Section:
        """Add a bulleted list of plain-text entries."""
        lis = "".join(f"<li>{html.escape(e)}</li>" for e in entries)
        self.parts.append(f'<ul class="{css_class}">{lis}</ul>')
        return self

    def figure(self, png: Path, caption: str) -> Section:
        """Embed a PNG file with a caption."""
        data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        self.parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        return self


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:,.3f}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{html.escape('—' if value is None else str(value))}</td>"


@dataclass
class Report:
    """An HTML report made of sections, written once with :meth:`write`."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        """Start a new section and return it for filling."""
        new = Section(title)
        self.sections.append(new)
        return new

    def to_html(self) -> str:
        """The whole report as one HTML document."""
        toc = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(self.sections))
        body = "".join(
            f'<section id="s{i}"><h2>{html.escape(s.title)}</h2>{"".join(s.parts)}</section>'
            for i, s in enumerate(self.sections)
        )
        made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"
            f"<p>{html.escape(self.subtitle)}</p><ol>{toc}</ol>{body}"
            f"<footer>Made by qamar {__version__} on {made}.</footer></body></html>"
        )

    def write(self, path: Path) -> Path:
        """Write the report to ``path`` (HTML, UTF-8) and return it."""
        Path(path).write_text(self.to_html(), encoding="utf-8")
        return Path(path)
