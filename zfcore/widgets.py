"""ipywidgets explorers and their static twins, which work in the rendered book without a kernel.

A static twin is a matplotlib animation rendered by :meth:`~matplotlib.animation.Animation.to_jshtml`:
precomputed frames with a slider. Its HTML links a font-awesome stylesheet on a CDN, which an offline
page cannot load (a console error), so :func:`static_slider` strips that link; the play buttons then
show text instead of icons.

The explorers need ipywidgets >= 8 (:data:`IPYWIDGETS_MIN`); with an older one (an old Colab image),
:func:`explorer` says so in one line, naming the version found and the fix.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation
from matplotlib.figure import Figure

__all__ = ["IPYWIDGETS_MIN", "WidgetsVersionError", "explorer", "require_ipywidgets", "static_slider",
           "strip_cdn_links"]

IPYWIDGETS_MIN = 8
"""The oldest major version of ipywidgets the explorers work with (``pyproject.toml``: ``ipywidgets>=8``)."""

_CDN_LINK = re.compile(r"<link[^>]*(?:font-awesome|cdnjs)[^>]*>\s*", re.IGNORECASE)


def strip_cdn_links(html: str) -> str:
    """Remove ``<link>`` tags that load stylesheets from a CDN (to_jshtml's font-awesome)."""
    return _CDN_LINK.sub("", html)


def static_slider(frames: Sequence[np.ndarray], labels: Sequence[str], *, title: str = "", size: float = 6.0,
                  interval_ms: int = 800):
    """A kernel-free slider over precomputed images (``[H, W, 3]`` in [0, 1]): an HTML animation.

    Returns an :class:`IPython.display.HTML` object; display it as the last expression of a cell.
    """
    from IPython.display import HTML

    height, width = frames[0].shape[:2]
    figure = plt.figure(figsize=(size, size * height / width + 0.4))
    axis = figure.add_axes((0, 0, 1, 0.93))
    axis.axis("off")
    shown = axis.imshow(frames[0], interpolation="nearest")
    heading = figure.suptitle(f"{title}{labels[0]}", fontsize=9)

    def draw(index: int):
        shown.set_data(frames[index])
        heading.set_text(f"{title}{labels[index]}")
        return (shown,)

    movie = animation.FuncAnimation(figure, draw, frames=len(frames), interval=interval_ms, blit=False)
    with plt.rc_context({"animation.frame_format": "jpeg"}):  # a fifth of PNG's size for these images
        html = strip_cdn_links(movie.to_jshtml(default_mode="once"))
    plt.close(figure)
    return HTML(html)


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
