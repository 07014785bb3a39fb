"""Figures and static explorers: display scaling, mosaics, and offline-safe animation HTML."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
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


def test_to_display_percentile_contrast_clips_the_strongest_and_ignores_zeros():
    images = torch.zeros(1, 3, 10, 10)
    images[0, 0, :5] = torch.arange(1.0, 51.0).view(5, 10)  # 50 non-zero values 1..50, 250 zeros
    images[0, 0, 0, 0] = 1000.0  # one outlier
    by_maximum = plots.to_display(images)
    clipped = plots.to_display(images, percentile=90)
    assert by_maximum[0, 4, 9, 0] < 0.53  # the outlier leaves everything else near grey
    scale = float(torch.quantile(images[images != 0], 0.9))  # over the non-zero values only
    assert clipped[0, 0, 0, 0] == 1.0 and abs(clipped[0, 2, 0, 0] - (0.5 + 0.5 * 21 / scale)) < 1e-6
    assert clipped[0, 9, 9, 0] == 0.5
    assert np.all(plots.to_display(torch.zeros(1, 3, 2, 2), percentile=99) == 0.5)
    with pytest.raises(ValueError, match="percentile=0"):
        plots.to_display(images, percentile=0)


def test_top9_mosaic_views():
    projections, patches = torch.randn(9, 3, 8, 8), torch.randint(0, 256, (9, 3, 8, 8), dtype=torch.uint8)
    both = plots.top9_mosaic(projections, patches)
    one = plots.top9_mosaic(projections, patches, view="patches")
    assert both.shape == (30, 60, 3) and one.shape == (30, 30, 3)  # 3 x 8 px + 2 gaps of 1 + borders of 2
    assert np.all(one[2:-2, 10] == 1.0)  # the white gap between the first two tile columns
    with pytest.raises(ValueError, match="view='all'"):
        plots.top9_mosaic(projections, patches, view="all")
    boxes = torch.tensor([0, 0, 7, 7]).expand(9, 4)
    assert plots.top9_mosaic(projections, patches, boxes=boxes, tile=16).shape == (3 * 16 + 2 + 4, 2 * (3 * 16 + 2 + 4), 3)


def test_top9_figure_stacks_layers_with_tiles_of_the_requested_size():
    from zfcore.analysis.top9 import TopProjections

    boxes = torch.tensor([0, 0, 7, 7]).expand(4, 9, 4)
    layers = {layer: TopProjections(layer, torch.randn(4, 9, 3, 16, 16), torch.zeros(4, 9, 3, 16, 16, dtype=torch.uint8),
                                    boxes) for layer in ("conv1", "conv2")}
    figure = plots.top9_figure(layers, [0, 1, 2], maps_per_row=2, tile=64)
    mosaic = 3 * 64 + 2 + 4  # one 3x3 mosaic with its gaps and border
    width, height = figure.get_size_inches() * figure.dpi
    assert round(width) == 2 * (2 * mosaic) + 12  # two maps (projections | patches) per row, 12 px apart
    blocks = [axis for axis in figure.axes]
    assert len(blocks) == 2  # one block per layer, stacked: the first above the second
    assert blocks[0].get_position().y0 > blocks[1].get_position().y1
    image = blocks[0].images[0].get_array()
    assert image.shape == (2 * (18 + mosaic), round(width), 3)  # 3 maps, 2 per row: 2 rows with their labels
    plt.close(figure)


def test_projection_comparison_boxes_the_receptive_field():
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    projections = {"conv1": torch.randn(2, 3, 16, 16), "conv2": torch.randn(2, 3, 16, 16)}
    figure = plots.projection_comparison(image, projections, ["a", "b"], {"conv1": (1, 2, 8, 9), "conv2": (0, 0, 16, 16)})
    assert len(figure.axes) == 2 * 3
    box = figure.axes[3].patches[0]  # second row, input column
    assert (box.get_x(), box.get_y(), box.get_width(), box.get_height()) == (-0.5, -0.5, 16, 16)
    plt.close(figure)


def test_static_slider_has_frames_and_no_cdn_links():
    frames = [np.full((8, 8, 3), value) for value in (0.0, 0.5, 1.0)]
    html = widgets.static_slider(frames, ["a", "b", "c"]).data
    assert 'type="range"' in html and html.count("data:image/jpeg;base64") >= 3
    assert "cdnjs" not in html and "font-awesome" not in html
    assert widgets.strip_cdn_links('<link rel="stylesheet" href="https://cdnjs.cloudflare.com/x/font-awesome.css">ok') == "ok"


def test_evolution_mosaic_has_a_row_per_layer_padded_to_the_widest():
    projections = {"conv1": torch.randn(3, 4, 3, 8, 8), "conv2": torch.randn(3, 2, 3, 8, 8)}
    frame = plots.evolution_mosaic(projections, snapshot=1)
    assert frame.shape == (2 * 10, 4 * 10, 3)  # 2 layers x (8 + 2 border); 4 maps x 10 wide
    assert frame.min() >= 0.0 and frame.max() <= 1.0
    assert np.all(frame[10:, 20:] == 1.0)  # conv2's 2 maps leave the right half of its row white
    np.testing.assert_array_equal(frame[1:9, 1:9], plots.to_display(projections["conv1"][1, 0]))
    with pytest.raises(ValueError, match="snapshot=3 is not valid"):
        plots.evolution_mosaic(projections, snapshot=3)
