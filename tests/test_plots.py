"""Figures and static explorers: display scaling, mosaics, offline-safe animation HTML, and figures drawn for the
book's column (their width and the size of their smallest text as the book shows them)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from zfcore import plots, widgets  # noqa: E402
from zfcore.plots import style  # noqa: E402


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


# -- drawn for the book's column ------------------------------------------------------------------------------------


def _shown_text_px(figure) -> tuple[float, float]:
    """(the PNG's display width in CSS px, its smallest text in CSS px as the book shows it in its column)."""
    png, metadata = style.book_png(figure)
    plt.close(figure)
    natural = int.from_bytes(png[16:20], "big")
    shown = min(metadata["width"], style.COLUMN_PX)
    return metadata["width"], style.png_text_px(png) * shown / natural


def test_book_png_is_twice_the_display_size_and_records_its_smallest_text():
    figure, axis = plt.subplots(figsize=(4, 2))
    axis.plot([0, 1], [0, 1])
    axis.set_title("title", fontsize=12)
    axis.text(0.5, 0.5, "small", fontsize=6.5)
    png, metadata = style.book_png(figure)
    natural = int.from_bytes(png[16:20], "big")
    assert natural == 2 * metadata["width"] and metadata["width"] <= 4 * style.CSS_PX_PER_INCH
    assert style.png_text_px(png) == pytest.approx(6.5 * style.DPI / 72, abs=0.01)  # the smallest text drawn
    figure, axis = plt.subplots()
    axis.imshow(np.zeros((4, 4, 3)))
    axis.axis("off")
    assert style.png_text_px(style.book_png(figure)[0]) is None  # no text at all
    plt.close("all")


def test_png_text_px_rejects_a_figure_drawn_another_way():
    import io

    figure, axis = plt.subplots()
    axis.plot([0, 1])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # as IPython's own formatter: no record
    plt.close(figure)
    with pytest.raises(ValueError, match="no zfbook:smallest-text-px record"):
        style.png_text_px(buffer.getvalue())
    with pytest.raises(ValueError, match="not a PNG"):
        style.png_text_px(b"GIF89a")


def test_use_book_style_sets_legible_defaults():
    with plt.rc_context():
        style.use_book_style()
        keys = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize",
                "legend.fontsize", "figure.titlesize")
        sizes = [matplotlib.rcParams[key] for key in keys]
        assert min(sizes) >= style.MIN_FONT_PT
        assert style.MIN_FONT_PT * style.CSS_PX_PER_INCH / 72 >= 9  # 9 CSS px at the book's scale


def _sweep():
    from zfcore.analysis.maps import MEASURES
    from zfcore.analysis.sanity import RandomizationSimilarity

    steps = ("original", "fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1")
    methods = ("deconvnet", "guided")
    similarity = {m: {k: torch.rand(6, len(steps), dtype=torch.float64) for k in MEASURES} for m in methods}
    baseline = {m: {k: torch.rand(6, dtype=torch.float64) for k in MEASURES} for m in methods}
    return RandomizationSimilarity("cascading", steps, tuple(() for _ in steps), methods, torch.zeros(6), similarity,
                                   baseline, {m: torch.randn(1, len(steps), 3, 16, 16) for m in methods})


@pytest.mark.parametrize("draw", [
    lambda: plots.training_curves([{"epoch": e, "train_loss": 1.0, "val_loss": 1.0, "train_top1": 0.1, "val_top1": 0.1,
                                    "val_top5": 0.2} for e in range(5)]),
    lambda: plots.filter_grid(torch.randn(96, 3, 7, 7), columns=24, shared_scale=True, title="(a) filters"),
    lambda: plots.image_grid(np.zeros((2, 11, 8, 8, 3)), titles=[f"unit {i}" for i in range(11)],
                             row_labels=["a", "b"], cell=1.1, title="eleven columns"),
    lambda: plots.randomization_curves(_sweep()),
    lambda: plots.randomization_panel(_sweep(), np.zeros((16, 16, 3), dtype=np.uint8)),
    lambda: plots.convergence_plot([1, 2, 4], {"filters": {"conv1": torch.rand(3)},
                                               "projections": {"conv1": torch.rand(3)}}),
], ids=["training", "filters", "wide grid", "randomisation", "randomisation panel", "convergence"])
def test_figures_fit_the_column_with_legible_text(draw):
    with plt.rc_context():
        style.use_book_style()
        width, text = _shown_text_px(draw())
    assert width <= style.COLUMN_PX and text >= 9, f"{width} CSS px wide, smallest text {text:.1f} CSS px"


def test_the_old_figures_would_fail():
    """The figure sizes this book had before it was drawn for its column: 12.6 inches wide, 6-pt text."""
    with plt.rc_context():
        style.use_book_style()
        figure, axis = plt.subplots(figsize=(12.6, 3.4))
        axis.plot([0, 1])
        axis.legend(["a"], fontsize=6)
        width, text = _shown_text_px(figure)
    assert width > style.COLUMN_PX and text < 6  # about 5.7 CSS px: the test of the built book fails it


def test_top9_figure_headings_replace_the_layer_name():
    from zfcore.analysis.top9 import TopProjections

    patches, boxes = torch.zeros(2, 9, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 0, 7, 7]).expand(2, 9, 4)
    layers = {"conv2": TopProjections("conv2", torch.randn(2, 9, 3, 8, 8), patches, boxes)}
    figure = plots.top9_figure(layers, [0, 1], headings={"conv2": "(d) AlexNet-style: conv2"})
    assert [text.get_text() for text in figure.texts] == ["(d) AlexNet-style: conv2"]  # one heading, no second title
    plt.close(figure)


def test_static_slider_keeps_its_heading_above_the_frame_and_records_the_smallest_text():
    frames = [np.full((50, 200, 3), value) for value in (0.0, 1.0)]
    html = widgets.static_slider(frames, ["first", "second"], text_px=10.0).data
    assert html.startswith('<div class="zfbook-slider" data-smallest-text-px="10.00">')  # shown pixel for pixel
    assert 'data-smallest-text-px="none"' in widgets.static_slider(frames).data  # no heading, frames without text
    big = [np.zeros((100, 2000, 3))] * 2  # wider than the column: shown at its width, the frames' text shrinks
    shrunk = 10.0 * widgets.COLUMN_PX / 2000
    assert f'data-smallest-text-px="{shrunk:.2f}"' in widgets.static_slider(big, text_px=10.0).data


def test_explore_shows_the_explorer_and_returns_a_slider_over_the_grid(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda widget: shown.append(widget))
    calls = []

    def render(a=0, b="x"):
        calls.append((a, b))
        figure, axis = plt.subplots(figsize=(2, 1))
        axis.set_title(f"{a} {b}", fontsize=8)
        return figure

    twin = widgets.explore(render, [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "x"}])
    assert calls == [(1, "x"), (1, "x"), (2, "y"), (3, "x")]  # the explorer's first figure, then one frame per point
    assert len(shown) == 1 and type(shown[0]).__name__ == "interactive"
    assert [child.description for child in shown[0].children[:2]] == ["a", "b"]
    assert list(shown[0].children[0].options) == [1, 2, 3]  # a dropdown of the grid's values by default
    assert twin.data.count("data:image/jpeg;base64") >= 3
    assert f'data-smallest-text-px="{8 * 100 / 72:.2f}"' in twin.data  # the frames' titles, drawn at 100 dpi
    with pytest.raises(ValueError, match="2 labels for 3 points"):
        widgets.explore(render, [{"a": 1}] * 3, labels=["x", "y"])
    with pytest.raises(ValueError, match="grid is empty"):
        widgets.explore(render, [])


def _invariance_data():
    from zfcore.analysis.invariance import InvarianceSweep, paper_amounts
    from zfcore.analysis.stability import saturation_fits

    sweeps = []
    for kind in ("translate", "scale", "rotate"):
        amounts = paper_amounts(kind)
        sweeps.append(InvarianceSweep(kind, amounts, torch.zeros(2, dtype=torch.long),
                                      {"conv1": torch.rand(2, len(amounts)), "fc7": torch.rand(2, len(amounts))},
                                      torch.rand(2, len(amounts)), torch.zeros(2, len(amounts), dtype=torch.long),
                                      torch.rand(2), torch.zeros(2, dtype=torch.long)))
    sizes = sweeps[0].amounts.abs()
    fits = {"shift | trained": saturation_fits(sizes, sizes.sqrt() * torch.rand(5, 1)),
            "shift | random weights": saturation_fits(sizes, sizes * torch.rand(5, 1)),
            "scale | trained": saturation_fits(sweeps[1].amounts - 1, (sweeps[1].amounts - 1) * torch.rand(5, 1))}
    return sweeps, fits


def test_invariance_figures_fit_the_column_and_label_the_strips():
    sweeps, fits = _invariance_data()
    strips = [np.zeros((4, 64, 64, 3), dtype=np.uint8)] * 3
    amounts = [[-17, -8, 8, 17], [1.0, 1.3, 1.55, 1.8], [0, 45, 90, 180]]
    draws = [lambda: plots.invariance_figure(sweeps, strips, ["a", "b"], strip_amounts=amounts),
             lambda: plots.saturation_figure(fits, {"shift": "|shift| / 17 px", "scale": "(factor − 1) / 0.8"}),
             lambda: plots.scale_control_figure(sweeps[1].amounts, {"zoom": torch.rand(4, 9), "blur": torch.rand(3, 9)})]
    with plt.rc_context():
        style.use_book_style()
        labelled = plots.invariance_figure(sweeps, strips, ["a", "b"], strip_amounts=amounts)
        texts = [text.get_text() for text in labelled.axes[0].texts + labelled.axes[4].texts + labelled.axes[8].texts]
        plt.close(labelled)
        assert texts == ["-17 px", "-8 px", "+8 px", "+17 px", "×1", "×1.3", "×1.55", "×1.8", "0°", "45°", "90°", "180°"]
        for draw in draws:
            width, text = _shown_text_px(draw())
            assert width <= style.COLUMN_PX and text >= 9, f"{width} CSS px wide, smallest text {text:.1f} CSS px"
