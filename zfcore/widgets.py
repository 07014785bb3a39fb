"""ipywidgets explorers and their static twins, which work in the rendered book without a kernel.

:func:`explore` makes both in one call: the explorer of a ``render`` function, and a slider over
``render`` at a grid of points, precomputed. A static twin is a matplotlib animation rendered by
:meth:`~matplotlib.animation.Animation.to_jshtml`: precomputed frames with a slider. Its HTML links a
font-awesome stylesheet on a CDN, which an offline page cannot load (a console error), so
:func:`static_slider` strips that link; the play buttons then show text instead of icons.

The explorers need ipywidgets >= 8 (:data:`IPYWIDGETS_MIN`); with an older one (an old Colab image),
:func:`explorer` says so in one line, naming the version found and the fix.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation
from matplotlib.figure import Figure

from zfcore.plots.style import COLUMN_PX, CSS_PX_PER_INCH, drawn

__all__ = ["HEADING_PT", "IPYWIDGETS_MIN", "WidgetsVersionError", "explore", "explorer", "require_ipywidgets",
           "static_slider", "strip_cdn_links"]

HEADING_PT = 9.0
"""Font size of a static slider's heading, in points."""

IPYWIDGETS_MIN = 8
"""The oldest major version of ipywidgets the explorers work with (``pyproject.toml``: ``ipywidgets>=8``)."""

_CDN_LINK = re.compile(r"<link[^>]*(?:font-awesome|cdnjs)[^>]*>\s*", re.IGNORECASE)


def strip_cdn_links(html: str) -> str:
    """Remove ``<link>`` tags that load stylesheets from a CDN (to_jshtml's font-awesome)."""
    return _CDN_LINK.sub("", html)


def static_slider(frames: Sequence[np.ndarray], labels: Sequence[str] | None = None, *, title: str = "",
                  size: float | None = None, interval_ms: int = 800, text_px: float | None = None):
    """A kernel-free slider over precomputed images (``[H, W, 3]`` in [0, 1]): an HTML animation.

    The frames are shown pixel for pixel (one frame pixel per CSS px) unless that is wider than the book's
    column; the heading (``title`` + the frame's label) has a band of its own above the frame, so it
    never covers what the frame draws. The HTML is wrapped in a ``div`` whose ``data-smallest-text-px``
    is the height of the smallest text in the animation's image pixels (the heading, or the frames' own
    text: ``text_px`` in frame pixels), for the book's legibility test.

    Args:
        frames: the images, all of one size.
        labels: one heading per frame (``None``: no heading).
        title: put before each label.
        size: width in inches (at :data:`~zfcore.plots.style.CSS_PX_PER_INCH`); default: the frames' width,
            at most the column's.
        interval_ms: time per frame when playing.
        text_px: the height of the smallest text the frames draw, in frame pixels (``None``: they draw none).

    Returns:
        An :class:`IPython.display.HTML` object; display it as the last expression of a cell.
    """
    from IPython.display import HTML

    height, width = frames[0].shape[:2]
    dpi = CSS_PX_PER_INCH
    if size is None:
        size = min(width, COLUMN_PX) / dpi
    band = HEADING_PT * 2.4 / 72 if labels is not None else 0.0  # inches above the frame for the heading
    frame_height = size * height / width
    figure = plt.figure(figsize=(size, frame_height + band), dpi=dpi)
    axis = figure.add_axes((0, 0, 1, frame_height / (frame_height + band)))
    axis.axis("off")
    shown = axis.imshow(frames[0], interpolation="nearest", aspect="auto")
    heading = None
    if labels is not None:
        heading = figure.text(0.5, 1 - band / 2 / (frame_height + band), f"{title}{labels[0]}", fontsize=HEADING_PT,
                              ha="center", va="center")

    def draw(index: int):
        shown.set_data(frames[index])
        if heading is not None:
            heading.set_text(f"{title}{labels[index]}")
        return (shown,)

    movie = animation.FuncAnimation(figure, draw, frames=len(frames), interval=interval_ms, blit=False)
    with plt.rc_context({"animation.frame_format": "jpeg"}):  # a fifth of PNG's size for these images
        html = strip_cdn_links(movie.to_jshtml(fps=None, default_mode="once"))
    plt.close(figure)
    sizes = [] if labels is None else [HEADING_PT * dpi / 72]
    if text_px is not None:
        sizes.append(text_px * size * dpi / width)  # frame pixels -> the animation's pixels
    smallest = f"{min(sizes):.2f}" if sizes else "none"
    return HTML(f'<div class="zfbook-slider" data-smallest-text-px="{smallest}">{html}</div>')


def explore(render: Callable[..., Figure], grid: Sequence[Mapping[str, Any]], *,
            controls: Mapping[str, Any] | None = None, labels: Sequence[str] | None = None,
            frame: Callable[..., Figure | np.ndarray] | None = None, size: float | None = None,
            interval_ms: int = 800):
    """An explorer of ``render`` and its static (no-kernel) twin, in one call.

    Displays the ipywidgets explorer (:func:`explorer`: ``render(**values)`` redrawn whenever a control
    changes) and returns its static twin (:func:`static_slider`): a slider over ``frame(**point)``
    (default: ``render``) at every point of ``grid``, precomputed now, so that the rendered book,
    which has no kernel, can still step through them.

    Args:
        render: the figure for one choice of the controls' values (keyword arguments).
        grid: the points of the static twin, in order: each a mapping of keyword arguments.
        controls: the explorer's controls, name -> a widget or an abbreviation of ``ipywidgets.interactive``
            (a list = dropdown, a ``(min, max)`` or ``(min, max, step)`` tuple = slider); default: per name
            in ``grid``, a dropdown of the values it takes there.
        labels: a heading per point of ``grid`` above the static frames (``None``: the frames' own titles).
        frame: draws a static frame (a figure, or pixels ``[H, W, 3]`` in [0, 1] without text); default ``render``.
        size, interval_ms: of the static twin (see :func:`static_slider`).

    Returns:
        The static twin (an :class:`IPython.display.HTML`); make it the last expression of the cell.

    Raises:
        WidgetsVersionError: ipywidgets is missing or older than :data:`IPYWIDGETS_MIN` (one line, with the fix).
        ValueError: an empty ``grid``, or ``labels`` of another length.
    """
    from IPython.display import display

    if not grid:
        raise ValueError("grid is empty: the static twin needs at least one point")
    if labels is not None and len(labels) != len(grid):
        raise ValueError(f"{len(labels)} labels for {len(grid)} points of the grid; give one per point")
    if controls is None:
        controls = {name: list(dict.fromkeys(point[name] for point in grid)) for name in grid[0]}
    display(explorer(render, **controls))
    frames, text = [], []
    for point in grid:
        drawn_frame = (frame or render)(**point)
        if isinstance(drawn_frame, Figure):
            pixels, text_px = drawn(drawn_frame)
            frames.append(pixels)
            if text_px is not None:
                text.append(text_px)
        else:
            frames.append(np.asarray(drawn_frame))
    return static_slider(frames, labels, size=size, interval_ms=interval_ms, text_px=min(text) if text else None)


class WidgetsVersionError(ImportError):
    """ipywidgets is missing or older than :data:`IPYWIDGETS_MIN` (the message names the version and the fix)."""


def require_ipywidgets():
    """The ``ipywidgets`` module, if it is at least :data:`IPYWIDGETS_MIN`.

    Raises:
        WidgetsVersionError: it is missing or older, in one line: the version found and the fix.
    """
    try:
        import ipywidgets
        found = str(getattr(ipywidgets, "__version__", "unknown"))
    except ImportError:
        ipywidgets, found = None, "none"
    major = re.match(r"\d+", found)
    if major is None or int(major.group()) < IPYWIDGETS_MIN:
        raise WidgetsVersionError(
            f"the explorers need ipywidgets >= {IPYWIDGETS_MIN}, found {found}: run "
            f'pip install -U "ipywidgets>={IPYWIDGETS_MIN}", then restart the runtime (kernel) and run the notebook again')
    return ipywidgets


def explorer(render: Callable[..., Figure], **controls):
    """An ipywidgets explorer: ``render(**values)`` is re-drawn whenever a control changes.

    ``controls`` map argument names to widgets or abbreviations accepted by ``ipywidgets.interactive``
    (a list = dropdown, an ``(min, max)`` tuple = slider).

    Raises:
        WidgetsVersionError: ipywidgets is missing or older than :data:`IPYWIDGETS_MIN` (one line, with the fix).
    """
    ipywidgets = require_ipywidgets()

    def show(**values) -> None:
        render(**values)
        plt.show()

    return ipywidgets.interactive(show, **controls)
