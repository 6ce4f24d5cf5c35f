"""Specification of the list report: a self-contained page, a PNG chart and a markdown snippet."""

from __future__ import annotations

import base64
import csv
import io
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from engine.config import load_config
from engine.ledger import ledger_row
from engine.report import (
    MAX_CELL_CHARS,
    TIER_COLOURS,
    TOP_DOMAINS,
    status_chart_png,
    status_markdown,
    write_report,
)
from engine.summary import build_summary
from engine.taxonomy import Status
from engine.verify import verify_addresses, verify_file

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SCRIPT_NAME = '<script>alert("name")</script>'
SCRIPT_EMAIL = "<script>alert(1)</script>@evil.example"
VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "rect"}
LIST_ROWS = [
    ("Ann", "ann@gmail.com"),
    ("Bob", "bob@gmail.com"),
    ("Cat", "cat@gmail.com"),
    ("Ann again", "ANN@gmail.com"),
    ("Dan", "dan@yahoo.com"),
    ("Eve", "eve@yahoo.com"),
    ("Info", "info@acme.example"),
    ("Temp", "temp@mailinator.com"),
    ("Broken", "bad@@example.com"),
    ("Blank", ""),
    (SCRIPT_NAME, SCRIPT_EMAIL),
]


class Page(HTMLParser):
    """Records a report's tags, text and tables (each under the heading before it)."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.start_tags: list[str] = []
        self.text: list[str] = []
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.unclosed: list[str] = []
        self._heading = ""
        self._in_heading: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start_tags.append(tag)
        if tag not in VOID_TAGS:
            self.unclosed.append(tag)
        if tag in {"h2", "h3"}:
            self._in_heading = []
        elif tag == "table":
            self.tables.append((self._heading, []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID_TAGS:
            return
        assert self.unclosed.pop() == tag, f"</{tag}> closes another element"
        if tag in {"h2", "h3"} and self._in_heading is not None:
            self._heading = "".join(self._in_heading).strip()
            self._in_heading = None
        elif tag in {"td", "th"} and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for sink in (self._in_heading, self._cell):
            if sink is not None:
                sink.append(data)

    def table(self, heading: str) -> list[dict[str, str]]:
        """The first table under `heading`, as one dict per body row."""
        for under, rows in self.tables:
            if under == heading:
                header, *body = rows
                return [dict(zip(header, row, strict=True)) for row in body]
        raise AssertionError(f"no table under {heading!r}")


@pytest.fixture
def verified(tmp_path: Path) -> tuple[pl.DataFrame, dict]:
    """A small list run through the real engine (syntax depth: no network)."""
    list_file = tmp_path / "customers.csv"
    with list_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "email"])
        writer.writerows(LIST_ROWS)
    run = verify_file(list_file, load_config({"depth": "syntax"}))
    return run.results, run.summary


def render(tmp_path: Path, results: pl.DataFrame, summary: dict, **options) -> str:
    path = write_report(results, summary, tmp_path / "out" / "report.html", **options)
    return path.read_text(encoding="utf-8")


def test_report_parses_and_shows_every_status_count(tmp_path, verified):
    results, summary = verified

    page = Page(render(tmp_path, results, summary))

    assert page.unclosed == []
    shown = {row["status"]: row["rows"] for row in page.table("Status breakdown")}
    assert shown == {status: f"{rows:,}" for status, rows in summary["by_status"].items()}
    assert list(shown) == [s.value for s in Status]
    assert summary["by_status"]["invalid"] == 3 and summary["by_status"]["do_not_mail"] == 2


def test_top_domain_comes_first_with_its_share_and_verdict_counts(tmp_path, verified):
    results, summary = verified

    domains = Page(render(tmp_path, results, summary)).table("Top domains")

    assert domains[0] == {
        "domain": "gmail.com",
        "rows": "4",
        "share": "36.4%",
        "valid": "0",
        "invalid": "0",
        "unknown": "4",
    }
    assert domains[1]["domain"] == "yahoo.com"


def test_untrusted_cells_are_shown_as_text_never_as_markup(tmp_path, verified):
    results, summary = verified
    summary = {**summary, "inputs": ['<img src=x onerror="alert(2)">.csv']}

    markup = render(tmp_path, results, summary)
    page = Page(markup)

    assert "<script" not in markup.lower() and "<img" not in markup.lower()
    assert set(page.start_tags) <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "dl", "dt", "dd",
        "section", "h2", "h3", "svg", "text", "rect", "table", "thead", "tbody", "tr", "th",
        "td", "div", "span", "b", "small", "p",
    }  # fmt: skip
    assert SCRIPT_EMAIL in {row["email"] for row in page.table("invalid")}
    assert '<img src=x onerror="alert(2)">.csv' in "".join(page.text)


def test_report_is_self_contained(tmp_path, verified):
    results, summary = verified

    markup = render(tmp_path, results, summary)

    assert "Content-Security-Policy" in markup and "default-src 'none'" in markup
    assert not re.search(r"https?:|src=|href=|url\(|@import|<script|<link", markup)


def test_sub_statuses_and_unknown_reasons_are_tabulated(tmp_path, verified):
    results, summary = verified

    page = Page(render(tmp_path, results, summary))

    sub_statuses = {
        (row["status"], row["sub_status"]): row["rows"] for row in page.table("Sub-statuses")
    }
    assert sub_statuses == {
        ("invalid", "failed_syntax_check"): "3",
        ("unknown", "not_probed"): "6",
        ("do_not_mail", "role_based"): "1",
        ("do_not_mail", "disposable"): "1",
    }
    assert page.table("Unknown reasons") == [
        {"sub_status": "not_probed", "rows": "6", "share of unknowns": "100.0%"}
    ]


def test_list_figures_show_duplicates_syntax_invalid_disposable_role_and_free(tmp_path, verified):
    results, summary = verified

    text = " ".join(" ".join(Page(render(tmp_path, results, summary)).text).split())

    for label, key in [
        ("Duplicates", "duplicates"),
        ("Syntax-invalid", "syntax_invalid"),
        ("Disposable", "disposable"),
        ("Role-based", "role_based"),
        ("Free provider", "free_provider"),
    ]:
        assert f"{label} {summary[key]:,}" in text
    assert summary["duplicates"] == 1 and summary["free_provider"] == 6


def test_samples_hold_at_most_the_requested_rows_per_status(tmp_path, verified):
    results, summary = verified

    page = Page(render(tmp_path, results, summary, sample_rows=2))

    invalid = page.table("invalid")
    assert [row["email"] for row in invalid] == ["bad@@example.com", "(empty)"]
    assert invalid[0]["sub_status"] == "failed_syntax_check" and invalid[0]["score"] == "0"
    assert invalid[0]["reason"]
    assert len(page.table("unknown")) == 2 and len(page.table("do_not_mail")) == 2


def test_cost_section_marks_only_smtp_probes_as_spent(tmp_path, verified):
    results, summary = verified
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    ledger = ledger_row(
        run_id="r1",
        list_id="customers-1a2b",
        started_at=moment,
        finished_at=moment,
        depth="smtp",
        rows=11,
        duplicates=1,
        syntax_invalid=3,
        cached=2,
        dns_lookups=5,
        smtp_probes=4,
        unknowns=6,
        charged=3,
    ).row(0, named=True)

    page = Page(render(tmp_path, results, summary, ledger=ledger, generated_at=moment))

    cost = {row["item"]: (row["count"], row["cost"]) for row in page.table("Cost")}
    assert cost == {
        "Input rows": ("11", ""),
        "Duplicates": ("1", "free"),
        "Syntax-invalid": ("3", "free"),
        "Cached verdicts": ("2", "free"),
        "DNS lookups": ("5", "free"),
        "SMTP probes": ("4", "spent"),
        "Unknowns": ("6", "free"),
    }
    text = "".join(page.text)
    assert "mailsift report: customers-1a2b" in text and "2025-01-02 03:04:05 UTC" in text


def test_report_without_a_ledger_says_the_cost_is_unknown(tmp_path, verified):
    results, summary = verified

    text = "".join(Page(render(tmp_path, results, summary)).text)

    assert "No ledger row for this run." in text


def test_empty_list_still_gives_a_report_a_chart_and_markdown(tmp_path):
    # The real contract schema with no rows (built from one verified row so that this test
    # does not depend on how the engine short-circuits an empty input).
    results = verify_addresses(["ann@gmail.com"], load_config({"depth": "syntax"})).clear()
    summary = build_summary(results)

    page = Page(render(tmp_path, results, summary))
    markdown = status_markdown(summary)

    assert page.unclosed == []
    assert {row["rows"] for row in page.table("Status breakdown")} == {"0"}
    assert "No domains." in "".join(page.text)
    assert status_chart_png(summary).startswith(PNG_SIGNATURE)
    assert "| valid | deliverable | 0 | 0.0% |" in markdown


def test_status_chart_png_decodes_to_a_bar_chart_in_tier_colours(verified):
    image = pytest.importorskip("matplotlib.image")
    _, summary = verified

    png = status_chart_png(summary)
    pixels = (image.imread(io.BytesIO(png))[..., :3] * 255).round().astype(int)

    assert png.startswith(PNG_SIGNATURE)
    height, width, _ = pixels.shape
    assert width >= 400 and height >= 150
    colours = {tuple(int(v) for v in pixel) for pixel in pixels.reshape(-1, 3)}
    for tier in ("undeliverable", "risky", "unknown"):  # the tiers this list has rows in
        hex_colour = TIER_COLOURS[tier]
        assert tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)) in colours


def test_status_markdown_is_a_table_and_an_embedded_png(verified):
    _, summary = verified

    markdown = status_markdown(summary)

    assert "| invalid | undeliverable | 3 | 27.3% |" in markdown
    for status, rows in summary["by_status"].items():
        assert f"| {status} |" in markdown and f"| {rows:,} |" in markdown
    payload = re.search(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert payload and base64.b64decode(payload.group(1)).startswith(PNG_SIGNATURE)


def test_report_stays_small_on_a_large_list(tmp_path, verified):
    results, _ = verified
    copies = 200_000 // results.height + 1
    large = (
        pl.concat([results] * copies)
        .head(200_000)
        .with_columns(
            # Many domains and a megabyte-long cell: neither may grow the report.
            domain=pl.format("d{}.example", pl.int_range(pl.len()) % 30_000),
            email_normalized=pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.lit("x" * 1_000_000))
            .otherwise(pl.col("email_normalized")),
        )
    )
    summary = build_summary(large)

    path = write_report(large, summary, tmp_path / "report.html")

    assert path.stat().st_size < 1_000_000
    page = Page(path.read_text(encoding="utf-8"))
    assert len(page.table("Top domains")) == TOP_DOMAINS
    assert max(len(row["email"]) for row in page.table("unknown")) <= MAX_CELL_CHARS
