"""One self-contained HTML page (images inline as data URIs, no script, no network): readable offline, mailable.

A page is a title, a headline and a list of Sections; each section holds paragraphs, tables, figures and the warnings
about what it shows, so a warning sits next to the plot or number it concerns."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from ladder.io import atomic_write_text
from ladder.report.tables import TextTable


@dataclass
class Figure:
    path: Path  # a PNG written by ladder.fit.plots
    caption: str = ""

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(Path(self.path).read_bytes()).decode("ascii")


@dataclass
class Section:
    title: str
    anchor: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[TextTable] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.paragraphs or self.tables or self.figures or self.warnings)


@dataclass
class Headline:
    """The one number a reader came for: the forecast, its interval and, once measured, the actual."""
    label: str
    value: str
    detail: str = ""


def render(title: str, sections: list[Section], headlines: list[Headline] = (), subtitle: str = "") -> str:
    environment = Environment(loader=PackageLoader("ladder.report", "templates"),
                              autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    sections = [s for s in sections if not s.empty]
    return environment.get_template("page.html.j2").render(
        title=title, subtitle=subtitle, sections=sections, headlines=list(headlines),
        written=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))


def write_page(path: Path, title: str, sections: list[Section], headlines: list[Headline] = (),
               subtitle: str = "") -> Path:
    atomic_write_text(Path(path), render(title, sections, headlines, subtitle))
    return Path(path)


def write_markdown(path: Path, title: str, subtitle: str, sections: list[Section]) -> Path:
    """The same sections as Markdown: tables as the terminal prints them, figures as links to the PNGs beside."""
    lines = [f"# {title}", "", subtitle, ""]
    for s in (s for s in sections if not s.empty):
        lines += [f"## {s.title}", ""]
        lines += [f"> warning: {w}" for w in s.warnings] + ([""] if s.warnings else [])
        lines += [p + "\n" for p in s.paragraphs]
        lines += [f"```\n{t.text()}\n```\n" for t in s.tables]
        lines += [f"![{f.path.stem}]({_relative(f.path, path.parent)})\n" for f in s.figures]
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _relative(file: Path, directory: Path) -> str:
    try:
        return str(Path(file).resolve().relative_to(directory.resolve()))
    except ValueError:
        return str(file)

