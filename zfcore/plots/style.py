"""How the book draws its figures: for its text column, with legible text, at twice the screen's resolution.

The book's text column is :data:`COLUMN_PX` CSS pixels wide (at a 1280-px window). Every figure is drawn
:data:`WIDTH` inches wide and shown at :data:`CSS_PX_PER_INCH` CSS pixels per inch, so it fills the column
without being shrunk; its PNG has :data:`DPI` pixels per inch, two image pixels per CSS pixel (sharp on
high-density screens). At that scale a point of text is 100/72 CSS px, and the smallest text the figures
use, :data:`MIN_FONT_PT`, is 9.7 CSS px.

:func:`use_book_style` (called once at the top of each chapter) sets these sizes as matplotlib's defaults
and makes IPython show figures through :func:`book_png`, which writes into each PNG the height of its
smallest text in image pixels (:data:`TEXT_KEY`), so that a test of the built book can measure the text as
the reader sees it (:func:`png_text_px`). Image grids stay PNG (their pixels are the content); plots are
PNG too, at the same resolution, so that one measure covers every figure.
"""

from __future__ import annotations

import io
import struct
import zlib
from contextlib import contextmanager
from typing import Iterator

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.figure import Figure

__all__ = ["COLUMN_PX", "CSS_PX_PER_INCH", "DPI", "MIN_FONT_PT", "RC", "TEXT_KEY", "WIDTH", "book_png", "drawn",
           "figure_pixels", "png_text_px", "use_book_style"]

COLUMN_PX = 688
"""Width of the book's text column in CSS px (the theme's article column at a 1280-px window)."""
CSS_PX_PER_INCH = 100
"""CSS px per inch of a figure in the book (a PNG's display width is its width in inches times this)."""
WIDTH = 6.8
"""Width of a full-column figure in inches (680 CSS px; with its margins, :data:`PAD`, the column)."""
DPI = 200
"""Pixels per inch of the book's PNGs: two image pixels per CSS px."""
MIN_FONT_PT = 7.0
"""The smallest text the figures draw, in points: 9.7 CSS px at :data:`CSS_PX_PER_INCH`."""
PAD = 0.04
"""Inches of white around a figure cropped to its content (:data:`WIDTH` + 2 x this = the column)."""
TEXT_KEY = "zfbook:smallest-text-px"
"""The PNG text chunk (tEXt) that holds the height of a figure's smallest text in image pixels (``none``: no text)."""

RC = {
    "figure.dpi": CSS_PX_PER_INCH,  # a figure's pixels in a kernel (explorers, static frames) are CSS px
    "figure.figsize": (WIDTH, 2.8),
    "font.size": 8.0,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 7.5,
    "legend.title_fontsize": 7.5,
    "figure.titlesize": 9.0,
    "savefig.facecolor": "white",
}
"""matplotlib settings of the book's figures (every size at least :data:`MIN_FONT_PT`)."""


@contextmanager
def _recording_text(sizes: list[float]) -> Iterator[None]:
    """While active, every string drawn by matplotlib's Agg renderer adds its size in points to ``sizes``."""
    original = RendererAgg.draw_text

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if str(s).strip():
            sizes.append(float(prop.get_size_in_points()))
        return original(self, gc, x, y, s, prop, angle, ismath, mtext)

    RendererAgg.draw_text = draw_text
    try:
        yield
    finally:
        RendererAgg.draw_text = original


def drawn(figure: Figure, *, close: bool = True) -> tuple[np.ndarray, float | None]:
    """A figure rendered at its own dpi, and the height of its smallest text in those pixels.

    Args:
        figure: the figure (drawn with Agg).
        close: close the figure afterwards.

    Returns:
        ``(pixels, text_px)``: ``[H, W, 3]`` floats in [0, 1]; the smallest font drawn, in pixels of
        ``pixels`` (``None``: the figure draws no text).
    """
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    sizes: list[float] = []
    with _recording_text(sizes):
        figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].astype(np.float32) / 255.0
    if close:
        plt.close(figure)
    return pixels, (min(sizes) * figure.dpi / 72 if sizes else None)


def figure_pixels(figure: Figure) -> np.ndarray:
    """A figure rendered to ``[H, W, 3]`` floats in [0, 1] (a frame for a static explorer); closes it."""
    return drawn(figure)[0]


def _text_chunk(key: str, value: str) -> bytes:
    body = key.encode("latin-1") + b"\0" + value.encode("latin-1")
    return struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", zlib.crc32(b"tEXt" + body))


def book_png(figure: Figure) -> tuple[bytes, dict[str, int]] | None:
    """A figure as the book shows it: PNG at :data:`DPI`, cropped to its content, its smallest text recorded.

    Returns:
        ``(png, metadata)`` for IPython (the display ``width`` and ``height`` in CSS px, at
        :data:`CSS_PX_PER_INCH`); ``None`` for an empty figure (as IPython's own formatter).
    """
    if not figure.axes and not figure.lines:
        return None
    sizes: list[float] = []
    buffer = io.BytesIO()
    with _recording_text(sizes):
        figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD,
                       facecolor=figure.get_facecolor(), edgecolor=figure.get_edgecolor())
    data = buffer.getvalue()
    value = f"{min(sizes) * DPI / 72:.2f}" if sizes else "none"
    data = data[:-12] + _text_chunk(TEXT_KEY, value) + data[-12:]  # before the IEND chunk (always the last 12 bytes)
    width, height = struct.unpack(">II", data[16:24])
    scale = CSS_PX_PER_INCH / DPI
    return data, {"width": round(width * scale), "height": round(height * scale)}


def png_text_px(data: bytes) -> float | None:
    """The height of a PNG's smallest text in its pixels, as :func:`book_png` recorded it.

    Returns:
        The height, or ``None`` when the PNG has no text (recorded as ``none``).

    Raises:
        ValueError: not a PNG, or a PNG without the record (not drawn by :func:`book_png`).
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"tEXt":
            key, _, value = data[position + 8 : position + 8 + length].partition(b"\0")
            if key.decode("latin-1") == TEXT_KEY:
                text = value.decode("latin-1")
                return None if text == "none" else float(text)
        position += 12 + length
    raise ValueError(f"the PNG has no {TEXT_KEY} record: it was not drawn by zfcore.plots.style.book_png")


def use_book_style() -> None:
    """Draw figures for the book: :data:`RC` as matplotlib's defaults and, in IPython, :func:`book_png` for figures.

    Call it once per notebook, after ``%matplotlib inline``.
    """
    matplotlib.rcParams.update(RC)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["image/png"].for_type(Figure, book_png)
