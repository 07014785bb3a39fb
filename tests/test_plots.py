"""Figures and static explorers: display scaling, mosaics, and offline-safe animation HTML."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from zfcore import plots, widgets  # noqa: E402


def test_to_display_maps_zero_to_grey_and_extremes_to_the_ends():
    images = torch.zeros(2, 3, 4, 4)
    images[0, 0, 0, 0], images[0, 1, 1, 1] = 2.0, -1.0
    shown = plots.to_display(images)
    assert shown.shape == (2, 4, 4, 3)
    assert shown[0, 0, 0, 0] == 1.0 and shown[0, 1, 1, 1] == 0.25 and shown[0, 2, 2, 2] == 0.5
    assert np.all(shown[1] == 0.5)  # an all-zero projection is plain grey
    assert plots.to_display(torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)).max() == 1.0


def test_top9_mosaic_views():
    projections, patches = torch.randn(9, 3, 8, 8), torch.randint(0, 256, (9, 3, 8, 8), dtype=torch.uint8)
    both = plots.top9_mosaic(projections, patches)
    one = plots.top9_mosaic(projections, patches, view="patches")
    assert both.shape == (28, 56, 3) and one.shape == (28, 28, 3)
    with pytest.raises(ValueError, match="view='all'"):
        plots.top9_mosaic(projections, patches, view="all")


def test_static_slider_has_frames_and_no_cdn_links():
    frames = [np.full((8, 8, 3), value) for value in (0.0, 0.5, 1.0)]
    html = widgets.static_slider(frames, ["a", "b", "c"]).data
    assert 'type="range"' in html and html.count("data:image/png;base64") >= 3
    assert "cdnjs" not in html and "font-awesome" not in html
    assert widgets.strip_cdn_links('<link rel="stylesheet" href="https://cdnjs.cloudflare.com/x/font-awesome.css">ok') == "ok"
