"""Inline SVG charts for the model-run page (ui/pages.py) and the evaluation report
(evaluation.py), which both draw with these: no script, no CDN.

Each function is pure: numbers in, an `<svg>` string out, sized in CSS pixels. Points carry
`class` attributes (`point`, `best`, `cell`) so a reader, or a test, can count what is drawn.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from sagemaker_lifecycle.job_metrics import TrialTable

WIDTH, HEIGHT = 520, 240
MARGIN = {"left": 48, "right": 16, "top": 16, "bottom": 36}
# One colour per series, in the order given (colour-blind safe: Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
MATRIX_CELL = 28
MATRIX_LABEL = 150
# Past this many classes (133 dog breeds) cells shrink so the matrix stays about this wide,
# and carry their count in their tooltip only.
MATRIX_PIXELS = 800
MIN_CELL_FOR_COUNT = 18


def _scale(value: float, low: float, high: float, start: float, length: float) -> float:
    """`value` in [low, high] mapped onto [start, start + length] (the middle when flat)."""
    if high == low:
        return start + length / 2
    return start + (value - low) / (high - low) * length


def _bounds(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low != high:
        return low, high
    pad = abs(low) / 10 or 0.5  # a flat series sits mid-chart, on a scale its own size
    return low - pad, high + pad


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    x_label: str,
    y_label: str,
    best: tuple[float, float] | None = None,
    connect: bool = True,
) -> str:
    """Series name -> (x, y) points, as lines with a dot per point; `best` ringed in red.

    An empty chart (no point at all) says so instead of drawing axes over nothing."""
    points = [point for values in series.values() for point in values]
    if not points:
        return "<p class='empty-chart'>no data recorded</p>"
    x_low, x_high = _bounds([x for x, _ in points])
    y_low, y_high = _bounds([y for _, y in points])
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            _scale(x, x_low, x_high, MARGIN["left"], plot_w),
            _scale(y, y_low, y_high, MARGIN["top"] + plot_h, -plot_h),
        )

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='{html.escape(y_label)} by "
        f"{html.escape(x_label)}' font-family='sans-serif' font-size='11'>",
        _axes(x_low, x_high, y_low, y_high, x_label, y_label, plot_w, plot_h),
    ]
    for index, (name, values) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        placed = [at(x, y) for x, y in sorted(values)]
        if connect and len(placed) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in placed)
            parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' "
                         f"points='{path}'/>")  # fmt: skip
        for (x, y), (raw_x, raw_y) in zip(placed, sorted(values), strict=True):
            parts.append(
                f"<circle class='point' data-series='{html.escape(name)}' cx='{x:.1f}' "
                f"cy='{y:.1f}' r='3.5' fill='{colour}'><title>{html.escape(name)}: "
                f"{raw_x:g}, {raw_y:.4g}</title></circle>"
            )
        parts.append(f"<text x='{MARGIN['left'] + 8 + 110 * index}' y='{MARGIN['top'] + 4}' "
                     f"fill='{colour}'>{html.escape(name)}</text>")  # fmt: skip
    if best is not None:
        x, y = at(*best)
        parts.append(f"<circle class='best' cx='{x:.1f}' cy='{y:.1f}' r='8' fill='none' "
                     f"stroke='#D55E00' stroke-width='2.5'><title>best: {best[0]:g}, "
                     f"{best[1]:.4g}</title></circle>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)


def _axes(x_low, x_high, y_low, y_high, x_label, y_label, plot_w, plot_h) -> str:
    left, top = MARGIN["left"], MARGIN["top"]
    bottom = top + plot_h
    ticks = []
    for fraction in (0, 0.5, 1):
        y_value = y_low + fraction * (y_high - y_low)
        y = bottom - fraction * plot_h
        ticks.append(f"<text x='{left - 4}' y='{y + 4:.1f}' text-anchor='end'>{y_value:.3g}</text>")
        x_value = x_low + fraction * (x_high - x_low)
        x = left + fraction * plot_w
        ticks.append(f"<text x='{x:.1f}' y='{bottom + 14}' text-anchor='middle'>{x_value:.3g}"
                     "</text>")  # fmt: skip
    return (
        f"<line x1='{left}' y1='{bottom}' x2='{left + plot_w}' y2='{bottom}' stroke='#444'/>"
        f"<line x1='{left}' y1='{top}' x2='{left}' y2='{bottom}' stroke='#444'/>"
        + "".join(ticks)
        + f"<text x='{left + plot_w / 2:.1f}' y='{HEIGHT - 4}' text-anchor='middle'>"
        f"{html.escape(x_label)}</text>"
        f"<text x='12' y='{top + plot_h / 2:.1f}' text-anchor='middle' "
        f"transform='rotate(-90 12 {top + plot_h / 2:.1f})'>{html.escape(y_label)}</text>"
    )


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """The row-normalised confusion matrix (rows: true class, columns: predicted), each cell
    shaded by its share of the row and labelled with its count (in its tooltip only when
    cells are too small to print it)."""
    n = len(classes)
    cell = max(4, min(MATRIX_CELL, MATRIX_PIXELS // max(n, 1)))
    size = MATRIX_LABEL + n * cell + 8
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='confusion-matrix' width='{size}' "
             f"height='{size}' viewBox='0 0 {size} {size}' role='img' aria-label='confusion "
             "matrix' font-family='sans-serif' font-size='10'>"]  # fmt: skip
    for row, counts in enumerate(matrix):
        total = sum(counts) or 1
        for column, count in enumerate(counts):
            share = count / total
            shade = 255 - round(200 * share)
            x, y = MATRIX_LABEL + column * cell, MATRIX_LABEL + row * cell
            parts.append(
                f"<rect class='cell' x='{x}' y='{y}' width='{cell - 1}' height='{cell - 1}' "
                f"fill='rgb({shade},{shade},255)'><title>true {html.escape(classes[row])}, "
                f"predicted {html.escape(classes[column])}: {count}</title></rect>"
            )
            if cell >= MIN_CELL_FOR_COUNT:
                ink = "#fff" if share > 0.6 else "#000"
                parts.append(f"<text x='{x + cell / 2}' y='{y + cell / 2 + 4}' "
                             f"text-anchor='middle' fill='{ink}'>{count}</text>")  # fmt: skip
    font = min(10, cell)
    for index, name in enumerate(classes):
        middle = MATRIX_LABEL + index * cell + cell / 2
        label = html.escape(name[:22])
        top = MATRIX_LABEL - 4
        parts.append(
            f"<text x='{top}' y='{middle + font / 2:.1f}' text-anchor='end' font-size='{font}'>"
            f"{label}</text><text x='{middle}' y='{top}' font-size='{font}' "
            f"transform='rotate(-60 {middle} {top})'>{label}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def tuning_chart(trials: TrialTable) -> str:
    """The objective of each trial against its number, unconnected, the best one ringed."""
    points = [(row["number"], row["objective"]) for row in trials.rows
              if row["objective"] is not None]  # fmt: skip
    best = trials.best
    marked = (best["number"], best["objective"]) if best and best["objective"] is not None else None
    return line_chart({trials.metric: points}, "trial", trials.metric, best=marked, connect=False)


def training_curves(curves: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """Two charts side by side: the loss metrics per epoch, and the accuracy metrics."""
    losses = {name: points for name, points in curves.items() if "loss" in name}
    accuracies = {name: points for name, points in curves.items() if "acc" in name}
    return (f"<div class='curves'>{line_chart(losses, 'epoch', 'loss')}"
            f"{line_chart(accuracies, 'epoch', 'accuracy')}</div>")  # fmt: skip
