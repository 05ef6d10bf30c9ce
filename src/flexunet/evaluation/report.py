"""``report.html`` of ``flexunet-eval``: mean metrics, per-image Dice, the worst images.

One self-contained page (every image a base64 PNG data URI) to look at after an evaluation:
the table of mean and pooled metrics, a histogram of the per-image lesion Dice and the
``eval.report_worst`` images with the lowest Dice, worst first, as overlays of the ground-truth
and the predicted lesion contours. :class:`WorstImages` collects those while the evaluation
predicts, keeping only the current N worst as small thumbnails, never every image.
"""

from __future__ import annotations

import base64
import heapq
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from flexunet.evaluation.figure import FigureGrid, fit_width
from flexunet.evaluation.scorer import metric_rows
from flexunet.inference.writer import LESION_CONTOUR, contour

#: Contour colours on the worst-image overlays: prediction as in flexunet-infer's overlays.
TRUTH_CONTOUR = (255, 0, 255)
PREDICTION_CONTOUR = LESION_CONTOUR
THUMBNAIL_WIDTH = 256


@dataclass(frozen=True)
class Worst:
    """One of the worst images: its name, lesion Dice, overlay thumbnail (PNG bytes) and the
    thumbnail-sized image, true and predicted class maps (for :func:`worst_figure`)."""

    stem: str
    dice: float
    png: bytes
    image: np.ndarray
    true: np.ndarray
    pred: np.ndarray


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def overlay_thumbnail(
    image: np.ndarray, true: np.ndarray, pred: np.ndarray, width: int = THUMBNAIL_WIDTH
) -> bytes:
    """``image`` scaled to ``width`` with the lesion contours (any class > 0) of the ground
    truth ``true`` and the prediction ``pred`` (class maps at the image's size), as a PNG."""
    small = fit_width(image, width)
    out = small.copy()
    for class_map, color in ((true, TRUTH_CONTOUR), (pred, PREDICTION_CONTOUR)):
        lesion = fit_width((class_map > 0).astype(np.uint8), width, nearest=True)
        out[contour(lesion.astype(bool))] = color
    return _png(out)


def worst_figure(worst: Sequence[Worst], num_classes: int, path: Path) -> Path:
    """``path`` (PNG): the ``worst`` images as rows of input / ground truth / prediction /
    overlay of both contours (ground truth magenta, prediction green), each labelled with its
    Dice at the original size (flexunet-figure's layout)."""
    grid = FigureGrid(num_classes, THUMBNAIL_WIDTH)
    for item in worst:
        overlay = np.asarray(Image.open(io.BytesIO(item.png)).convert("RGB"))
        grid.add_row(item.stem, item.image, item.true, item.pred, item.dice, overlay)
    grid.image().quantize(colors=256).save(path, optimize=True)
    return path


class WorstImages:
    """The ``count`` images with the lowest Dice seen so far (a heap, so memory stays at
    ``count`` thumbnails however many images are scored)."""

    def __init__(self, count: int, width: int = THUMBNAIL_WIDTH) -> None:
        self.count, self.width = count, width
        self._heap: list[tuple[float, int, Worst]] = []  # (-dice, order, ...): best on top
        self._seen = 0

    def add(
        self, stem: str, dice: float, image: np.ndarray, true: np.ndarray, pred: np.ndarray
    ) -> None:
        """Consider one scored image; its thumbnail is made only when it is among the worst."""
        self._seen += 1
        full = len(self._heap) >= self.count
        if self.count == 0 or (full and dice >= -self._heap[0][0]):
            return
        thumbnail = overlay_thumbnail(image, true, pred, self.width)
        small = (
            fit_width(image, self.width),
            fit_width(true.astype(np.uint8), self.width, nearest=True),
            fit_width(pred.astype(np.uint8), self.width, nearest=True),
        )
        entry = (-dice, self._seen, Worst(stem, dice, thumbnail, *small))
        if full:
            heapq.heapreplace(self._heap, entry)
        else:
            heapq.heappush(self._heap, entry)

    def worst_first(self) -> list[Worst]:
        """The kept images, lowest Dice first (ties in the order they were scored)."""
        return [worst for _, _, worst in sorted(self._heap, key=lambda e: (-e[0], e[1]))]


def dice_histogram(dice: Sequence[float]) -> bytes:
    """A PNG histogram of the per-image lesion Dice, with its mean marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.hist(dice, bins=20, range=(0.0, 1.0), color="#4c72b0", edgecolor="white")
    mean = float(np.mean(dice))
    ax.axvline(mean, color="#dd8452", linestyle="--", label=f"mean {mean:.3f}")
    ax.set(xlabel="lesion Dice", ylabel="images", xlim=(0.0, 1.0),
           title=f"per-image lesion Dice ({len(dice)} images)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _swatch(color: tuple[int, int, int], name: str) -> str:
    return f'<span class="swatch" style="background: rgb{color}"></span> {name}'


# Counts the images the browser could decode: "images shown: 13 of 13" (a check at a glance,
# and what the test reads back from headless Chromium).
_SCRIPT = """
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const shown = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.getElementById("shown").textContent = `${shown} of ${images.length}`;
});
"""

_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { padding: 2px 12px; text-align: right; }
td:first-child, th:first-child { text-align: left; } tr:nth-child(even) { background: #f3f3f3; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; } figcaption { font-size: 0.9em; }
.swatch { display: inline-block; width: 1em; height: 1em; vertical-align: middle; }
.meta { color: #666; font-size: 0.9em; }
"""


def _per_source_html(result: Mapping[str, Any]) -> str:
    """Per-source metrics and each source's worst images (evaluation.json's ``per_source``
    and ``worst``), or nothing for a single source."""
    per_source = result.get("per_source") or {}
    if not per_source:
        return ""
    rows = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td>{r['count']}</td>"
        + "".join(f"<td>{r['mean'][k]:.4f}</td>" for k in ("dice", "iou", "threshold_jaccard"))
        + "</tr>"
        for name, r in per_source.items()
    )
    worst = []
    for name, items in (result.get("worst") or {}).items():
        lines = "".join(
            f"<tr><td>{html.escape(w['stem'])}</td><td>{w['dice']:.4f}</td>"
            f"<td>{w['iou']:.4f}</td></tr>"
            for w in items
        )
        worst.append(
            f"<h3>{html.escape(name)}: the {len(items)} worst</h3>"
            f"<table><tr><th>image</th><th>Dice</th><th>IoU</th></tr>{lines}</table>"
        )
    return (
        "<h2>Per source</h2>\n<table><tr><th>source</th><th>images</th><th>Dice</th>"
        f"<th>IoU</th><th>thresholded Jaccard</th></tr>\n{rows}\n</table>\n"
        + "\n".join(worst)
    )


def write_html_report(
    path: Path, title: str, result: Mapping[str, Any], dice: Sequence[float],
    worst: Sequence[Worst],
) -> Path:
    """Write ``report.html``: ``result`` (evaluation.json's content) as a table, per source
    when it has several, the histogram of the per-image ``dice`` and the ``worst`` images;
    returns ``path``."""
    rows = "\n".join(
        f"<tr><td>{name}</td><td>{mean:.4f}</td>"
        f"<td>{'' if pooled is None else f'{pooled:.4f}'}</td></tr>"
        for name, mean, pooled in metric_rows(result)
    )
    figures = "\n".join(
        f"<figure>{_img(w.png, w.stem)}<figcaption>{html.escape(w.stem)}: "
        f"Dice {w.dice:.3f}</figcaption></figure>"
        for w in worst
    )
    legend = " &nbsp; ".join(
        (_swatch(TRUTH_CONTOUR, "ground truth"), _swatch(PREDICTION_CONTOUR, "prediction"))
    )
    options = ", ".join(f"{k}={v}" for k, v in (result.get("options") or {}).items())
    meta = f"{result['count']} image(s) scored at their original size; options: {options}"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(meta)}</p>
<h2>Metrics</h2>
<table><tr><th>metric</th><th>mean</th><th>pooled</th></tr>
{rows}
</table>
{_per_source_html(result)}
<h2>Per-image lesion Dice</h2>
{_img(dice_histogram(dice), "histogram of the per-image lesion Dice")}
<h2>The {len(worst)} worst images</h2>
<p>Lowest lesion Dice first. Contours: {legend}</p>
<div class="grid">
{figures}
</div>
<p class="meta">images shown: <span id="shown">(needs JavaScript)</span></p>
<script>{_SCRIPT}</script>
</body>
</html>
"""
    path.write_text(page, encoding="utf-8")
    return path
