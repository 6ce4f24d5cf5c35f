"""The list report: one page a person reads before deciding whether to send to a list.

`write_report` writes a self-contained `report.html` (inline CSS and SVG, no scripts, nothing
fetched), so it can be mailed, archived or opened offline and still look the same. Every value that
comes from the list (addresses, domains, sub-statuses of user lists, input names) is untrusted and
goes through `html.escape`; a Content-Security-Policy that forbids scripts and remote loads is a
second line of defence. `status_chart_png` / `status_markdown` give the same status chart for the
Dagster UI, whose markdown metadata shows images but not SVG.

Sizes are bounded by design (top domains, samples per status, characters per cell), so a report of
a 1M-row list is as small as one of 100 rows, and all aggregation is done by Polars.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine.export import atomic_output
from engine.taxonomy import TIER_OF_STATUS, Status, Tier

TOP_DOMAINS: Final = 20
SAMPLE_ROWS_PER_STATUS: Final = 5
# An untrusted cell can be megabytes long; the report shows a prefix so its size stays bounded.
MAX_CELL_CHARS: Final = 120
# User suppression lists name spamtrap/abuse sub-statuses; cap the table in case there are many.
MAX_SUB_STATUS_ROWS: Final = 100

# Tier colours: green / amber / red / grey, readable on white and for most colour-blind readers
# because the bars are also labelled.
TIER_COLOURS: Final[dict[str, str]] = {
    Tier.DELIVERABLE.value: "#2e7d32",
    Tier.RISKY.value: "#ef9f00",
    Tier.UNDELIVERABLE.value: "#c62828",
    Tier.UNKNOWN.value: "#78838c",
}

# Nothing may run and nothing may be fetched; styles are inline.
_CONTENT_SECURITY_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'"

# Ledger counts shown in the cost table, with whether the seeds charge for them (seed 003: only
# probes are spent; duplicates, syntax failures, cached verdicts, DNS and unknowns are free).
_LEDGER_COSTS: Final = (
    ("rows", "Input rows", ""),
    ("duplicates", "Duplicates", "free"),
    ("syntax_invalid", "Syntax-invalid", "free"),
    ("cached", "Cached verdicts", "free"),
    ("dns_lookups", "DNS lookups", "free"),
    ("smtp_probes", "SMTP probes", "spent"),
    ("unknowns", "Unknowns", "free"),
)
_FIGURES: Final = (
    ("duplicates", "Duplicates"),
    ("syntax_invalid", "Syntax-invalid"),
    ("disposable", "Disposable"),
    ("role_based", "Role-based"),
    ("free_provider", "Free provider"),
    ("typo_suggestions", "Typo suggestions"),
    ("cached", "Cached verdicts"),
    ("unique_domains", "Unique domains"),
)
_SAMPLE_COLUMNS: Final = ("email_normalized", "sub_status", "reason", "score")
_STATUS_POSITION: Final = {status.value: position for position, status in enumerate(Status)}


def write_report(
    results: pl.DataFrame,
    summary: Mapping[str, Any],
    path: Path,
    *,
    ledger: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
    top_domains: int = TOP_DOMAINS,
    sample_rows: int = SAMPLE_ROWS_PER_STATUS,
) -> Path:
    """Write the list's `report.html` atomically and return its path.

    `summary` is `engine.summary.build_summary(results)` (its counts are the report's counts, so
    the page agrees with summary.json); `results` supplies only top domains and samples. `ledger`
    is one row of `engine.ledger.LEDGER_SCHEMA` as a mapping; without it the cost section says so.
    """
    path = Path(path)
    page = render_report(
        results,
        summary,
        ledger=ledger,
        generated_at=generated_at,
        top_domains=top_domains,
        sample_rows=sample_rows,
    )
    with atomic_output(path) as temp:
        temp.write_text(page, encoding="utf-8")
    return path


def render_report(
    results: pl.DataFrame,
    summary: Mapping[str, Any],
    *,
    ledger: Mapping[str, Any] | None = None,
    generated_at: datetime | None = None,
    top_domains: int = TOP_DOMAINS,
    sample_rows: int = SAMPLE_ROWS_PER_STATUS,
) -> str:
    """The report page as a string (see `write_report`)."""
    moment = generated_at or datetime.now(UTC)
    list_id = summary.get("list_id") or (ledger or {}).get("list_id")
    title = f"mailsift report: {list_id}" if list_id else "mailsift report"
    total = int(summary.get("total_rows", 0))
    sections = [
        _header(title, summary, moment),
        _status_section(summary),
        _figures_section(summary),
        _sub_status_section(summary),
        _unknown_section(summary),
        _domains_section(domain_breakdown(results, limit=top_domains), total),
        _cost_section(ledger),
        _samples_section(status_samples(results, per_status=sample_rows)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_text(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def status_bars(summary: Mapping[str, Any]) -> list[tuple[str, int, str]]:
    """(status, rows, colour) in taxonomy order, then any status outside it (e.g. "none")."""
    by_status: Mapping[str, int] = summary.get("by_status", {})
    order = sorted({*_STATUS_POSITION, *by_status}, key=_status_order)
    return [(name, int(by_status.get(name, 0)), _colour_of(name)) for name in order]


def domain_breakdown(results: pl.DataFrame, *, limit: int = TOP_DOMAINS) -> pl.DataFrame:
    """The `limit` domains with most rows: rows, valid, invalid, unknown (ties by name)."""
    status = pl.col("status")
    return (
        results.lazy()
        .select("domain", "status")
        .filter(pl.col("domain").is_not_null())
        .group_by("domain")
        .agg(
            pl.len().alias("rows"),
            (status == Status.VALID.value).sum().alias("valid"),
            (status == Status.INVALID.value).sum().alias("invalid"),
            (status == Status.UNKNOWN.value).sum().alias("unknown"),
        )
        .sort(["rows", "domain"], descending=[True, False])
        .head(limit)
        .collect()
    )


def status_samples(
    results: pl.DataFrame, *, per_status: int = SAMPLE_ROWS_PER_STATUS
) -> pl.DataFrame:
    """The first `per_status` rows of each status, in input order, with the columns people read."""
    return (
        results.lazy()
        .select(pl.col("status").fill_null("none"), *_SAMPLE_COLUMNS)
        .group_by("status", maintain_order=True)
        .head(per_status)
        .collect()
    )


def status_chart_png(summary: Mapping[str, Any]) -> bytes:
    """The status breakdown as a PNG bar chart (same order and colours as the HTML chart)."""
    # Imported here: matplotlib costs ~0.8 s to import and only the UI metadata needs it. The
    # `Figure` API renders through Agg without pyplot's global state, so it is thread-safe.
    from matplotlib.figure import Figure

    bars = status_bars(summary)
    labels = [name for name, _, _ in bars]
    counts = [rows for _, rows, _ in bars]
    figure = Figure(figsize=(6.4, 0.8 + 0.32 * len(bars)), dpi=100)
    axes = figure.add_subplot()
    positions = list(range(len(bars)))
    drawn = axes.barh(positions, counts, color=[colour for _, _, colour in bars])
    axes.bar_label(drawn, labels=[f"{rows:,}" for rows in counts], padding=3, fontsize=9)
    axes.set_yticks(positions, labels, fontsize=9)
    axes.invert_yaxis()
    # Room for the count labels; a floor of 1 keeps an empty list from a singular axis.
    axes.set_xlim(0, max(1, *counts) * 1.18)
    axes.xaxis.set_visible(False)
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    axes.set_title(f"{int(summary.get('total_rows', 0)):,} rows by status", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def status_markdown(summary: Mapping[str, Any]) -> str:
    """A markdown status table plus the PNG chart as a data URI, for Dagster's markdown metadata."""
    total = int(summary.get("total_rows", 0))
    lines = ["| status | tier | rows | share |", "|---|---|--:|--:|"]
    for name, rows, _ in status_bars(summary):
        tier = _tier_of(name)
        lines.append(f"| {_md(name)} | {_md(tier)} | {rows:,} | {_md(_share(rows, total))} |")
    image = base64.b64encode(status_chart_png(summary)).decode("ascii")
    lines += ["", f"![status breakdown](data:image/png;base64,{image})"]
    return "\n".join(lines) + "\n"


# --- sections --------------------------------------------------------------------------------


def _header(title: str, summary: Mapping[str, Any], moment: datetime) -> str:
    inputs = summary.get("inputs") or []
    facts = [("Rows", f"{int(summary.get('total_rows', 0)):,}")]
    if inputs:
        facts.append(("Inputs", ", ".join(str(name) for name in inputs)))
    if summary.get("depth"):
        facts.append(("Depth", str(summary["depth"])))
    facts.append(("Generated", moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")))
    items = "".join(f"<dt>{_text(label)}</dt><dd>{_cell(value)}</dd>" for label, value in facts)
    return f'<header><h1>{_text(title)}</h1><dl class="facts">{items}</dl></header>'


def _status_section(summary: Mapping[str, Any]) -> str:
    total = int(summary.get("total_rows", 0))
    bars = status_bars(summary)
    rows = [
        (
            _swatch(colour) + _cell(name),
            _cell(_tier_of(name)),
            f"{count:,}",
            _text(_share(count, total)),
        )
        for name, count, colour in bars
    ]
    table = _table(("status", "tier", "rows", "share"), rows, numeric=(2, 3), escaped=True)
    return f"<section><h2>Status breakdown</h2>{_status_svg(bars, total)}{table}</section>"


def _status_svg(bars: Sequence[tuple[str, int, str]], total: int) -> str:
    """A horizontal bar chart drawn in SVG (no script, no fonts to fetch)."""
    label_width, bar_width, count_width, row_height = 110, 400, 120, 26
    width = label_width + bar_width + count_width
    height = row_height * len(bars) + 8
    peak = max((count for _, count, _ in bars), default=0) or 1
    shapes = []
    for index, (name, count, colour) in enumerate(bars):
        top = 4 + index * row_height
        length = round(bar_width * count / peak, 1)
        middle = top + row_height / 2
        label = f"{count:,} ({_share(count, total)})"
        shapes.append(
            f'<text x="{label_width - 8}" y="{middle}" text-anchor="end" '
            f'dominant-baseline="middle">{_text(name)}</text>'
            f'<rect x="{label_width}" y="{top + 3}" width="{length}" height="{row_height - 6}" '
            f'fill="{colour}"><title>{_text(name)}: {_text(label)}</title></rect>'
            f'<text x="{label_width + length + 6}" y="{middle}" '
            f'dominant-baseline="middle">{_text(label)}</text>'
        )
    return (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Rows by status">{"".join(shapes)}</svg>'
    )


def _figures_section(summary: Mapping[str, Any]) -> str:
    total = int(summary.get("total_rows", 0))
    cards = []
    for key, label in _FIGURES:
        value = int(summary.get(key, 0) or 0)
        share = "" if key == "unique_domains" else f"<small>{_text(_share(value, total))}</small>"
        cards.append(
            f'<div class="figure"><span>{_text(label)}</span><b>{value:,}</b>{share}</div>'
        )
    return f'<section><h2>List figures</h2><div class="figures">{"".join(cards)}</div></section>'


def _sub_status_section(summary: Mapping[str, Any]) -> str:
    total = int(summary.get("total_rows", 0))
    pairs = [
        (status, sub_status, int(rows))
        for status, subs in summary.get("by_sub_status", {}).items()
        for sub_status, rows in subs.items()
    ]
    rows = [
        (status, sub_status, f"{count:,}", _share(count, total))
        for status, sub_status, count in pairs[:MAX_SUB_STATUS_ROWS]
    ]
    note = _more_note(len(pairs) - MAX_SUB_STATUS_ROWS, "sub-statuses")
    body = _table(("status", "sub_status", "rows", "share"), rows, numeric=(2, 3)) if rows else ""
    return f"<section><h2>Sub-statuses</h2>{body or _empty('No rows.')}{note}</section>"


def _unknown_section(summary: Mapping[str, Any]) -> str:
    reasons: Mapping[str, int] = summary.get("by_sub_status", {}).get(Status.UNKNOWN.value, {})
    unknowns = sum(int(rows) for rows in reasons.values())
    rows = [
        (sub_status, f"{int(count):,}", _share(int(count), unknowns))
        for sub_status, count in sorted(reasons.items(), key=lambda item: -int(item[1]))
    ]
    body = (
        _table(("sub_status", "rows", "share of unknowns"), rows, numeric=(1, 2))
        if rows
        else _empty("No unknown rows.")
    )
    intro = "<p>Unknowns are free and are checked again on the next run.</p>" if unknowns else ""
    return f"<section><h2>Unknown reasons</h2>{intro}{body}</section>"


def _domains_section(domains: pl.DataFrame, total: int) -> str:
    rows = [
        (
            domain,
            f"{count:,}",
            _share(count, total),
            f"{valid:,}",
            f"{invalid:,}",
            f"{unknown:,}",
        )
        for domain, count, valid, invalid, unknown in domains.iter_rows()
    ]
    headers = ("domain", "rows", "share", "valid", "invalid", "unknown")
    body = _table(headers, rows, numeric=(1, 2, 3, 4, 5)) if rows else _empty("No domains.")
    return f"<section><h2>Top domains</h2>{body}</section>"


def _cost_section(ledger: Mapping[str, Any] | None) -> str:
    if ledger is None:
        return "<section><h2>Cost</h2>" + _empty("No ledger row for this run.") + "</section>"
    rows = [(label, _count(ledger.get(key)), cost) for key, label, cost in _LEDGER_COSTS]
    probes = _count(ledger.get("smtp_probes"))
    notes = [f"Only SMTP probes are spent ({probes}); everything else is free."]
    if ledger.get("charged") is not None:
        notes.append(f"{_count(ledger['charged'])} probes gave a definitive answer.")
    if ledger.get("budget") is not None:
        exhausted = " and was exhausted" if ledger.get("budget_exhausted") else ""
        notes.append(f"The probe budget was {_count(ledger['budget'])}{exhausted}.")
    table = _table(("item", "count", "cost"), rows, numeric=(1,))
    return f"<section><h2>Cost</h2>{table}<p>{_text(' '.join(notes))}</p></section>"


def _samples_section(samples: pl.DataFrame) -> str:
    if samples.is_empty():
        return "<section><h2>Samples</h2>" + _empty("No rows.") + "</section>"
    groups: dict[str, list[tuple[Any, ...]]] = {}
    for status, *cells in samples.iter_rows():
        groups.setdefault(status, []).append(tuple(cells))
    parts = []
    for status in sorted(groups, key=_status_order):
        rows = [
            (email if email else "(empty)", sub_status, reason, "" if score is None else score)
            for email, sub_status, reason, score in groups[status]
        ]
        parts.append(
            f"<h3>{_swatch(_colour_of(status))}{_text(status)}</h3>"
            + _table(("email", "sub_status", "reason", "score"), rows, numeric=(3,))
        )
    return "<section><h2>Samples</h2>" + "".join(parts) + "</section>"


# --- HTML pieces -----------------------------------------------------------------------------


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[int] = (),
    escaped: bool = False,
) -> str:
    """A table; cells are escaped unless `escaped` says the caller already built safe markup."""
    head = "".join(
        f"<th{' class=num' if index in numeric else ''}>{_text(name)}</th>"
        for index, name in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=num' if index in numeric else ''}>"
            f"{value if escaped else _cell(value)}</td>"
            for index, value in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: object) -> str:
    """An untrusted value, cut to `MAX_CELL_CHARS` and escaped."""
    text = "" if value is None else str(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    return _text(text)


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def _empty(message: str) -> str:
    return f'<p class="empty">{_text(message)}</p>'


def _more_note(hidden: int, what: str) -> str:
    return f'<p class="empty">{hidden:,} more {_text(what)} not shown.</p>' if hidden > 0 else ""


def _share(part: int, whole: int) -> str:
    """A percentage; a share too small to show at one decimal still says it is not zero."""
    if not whole:
        return "0.0%"
    return "<0.1%" if 0 < part / whole < 0.0005 else f"{part / whole:.1%}"


def _count(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def _status_order(status: str) -> tuple[int, str]:
    """Taxonomy order, then anything outside it alphabetically."""
    return (_STATUS_POSITION.get(status, len(_STATUS_POSITION)), status)


def _tier_of(status: str) -> str:
    try:
        return TIER_OF_STATUS[Status(status)].value
    except ValueError:
        return Tier.UNKNOWN.value


def _colour_of(status: str) -> str:
    return TIER_COLOURS[_tier_of(status)]


def _md(value: str) -> str:
    """Markdown-table-safe text: a pipe would end the cell, `<` could open raw HTML."""
    return html.escape(value, quote=False).replace("|", "\\|")


_STYLE: Final = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
max-width:1000px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:16px 0 4px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;color:#57606a}
.facts dd{margin:0;word-break:break-all}
table{border-collapse:collapse;margin:6px 0;width:100%}
th,td{border-bottom:1px solid #eaeef2;padding:3px 8px;text-align:left;vertical-align:top;
word-break:break-all}
th{background:#f6f8fa;font-weight:600}.num{text-align:right;white-space:nowrap;word-break:normal}
.chart{max-width:100%;height:auto;font-size:13px}
.chart text{fill:#1f2328}
.swatch{display:inline-block;width:10px;height:10px;margin-right:6px;border-radius:2px}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px}
.figure{border:1px solid #d0d7de;border-radius:6px;padding:8px}
.figure span{display:block;color:#57606a;font-size:12px}.figure b{font-size:18px;margin-right:6px}
.empty{color:#57606a;font-style:italic}
"""
