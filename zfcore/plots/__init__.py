"""Matplotlib figures for the book, one module per chapter; each takes analysis results and returns a
:class:`~matplotlib.figure.Figure` (or the pixels of an image).

``from zfcore import plots; plots.fn(...)`` reaches every figure. :mod:`zfcore.plots.style` holds how the
book draws them (their width, fonts and resolution; :func:`use_book_style`, called once per chapter) and
:mod:`zfcore.plots.images` the image helpers the chapters share.
"""

from zfcore.plots.ablations import ablation_figure
from zfcore.plots.architecture import (fig6_accuracy_table, filter_rms_table, frequency_coverage_plot, lattice_table,
                                      paper_inputs_summary, shift_consistency_plot, shift_table, spectrum_table,
                                      structure_table)
from zfcore.plots.correspondence import (PART_COLOURS, annotation_figure, correspondence_figure, gap_figure,
                                        predictions_table)
from zfcore.plots.deconvnet import VIEWS, projection_comparison, top9_figure, top9_mosaic
from zfcore.plots.evolution import convergence_plot, evolution_mosaic, fig4_figure
from zfcore.plots.images import crop_boxes, image_grid, tile_images, to_display
from zfcore.plots.invariance import INVARIANCE_AXES, invariance_figure, saturation_figure, scale_control_figure
from zfcore.plots.occlusion import c6_figure, occlusion_figure
from zfcore.plots.sanity import (attribution_table, randomization_curves, randomization_examples,
                                 randomization_panel, signed_distribution, similarity_table, switches_table)
from zfcore.plots.style import drawn, figure_pixels, use_book_style
from zfcore.plots.training import filter_grid, training_curves
from zfcore.plots.transfer import (c9_margin_table, c10_steps, duplicate_effect, duplicate_table, fig9_figure,
                                   layer_probe_figure, learning_curve_figure, network_sizes, split_accuracy, table4,
                                   table5, table7)

__all__ = [
    "INVARIANCE_AXES",
    "PART_COLOURS",
    "VIEWS",
    "ablation_figure",
    "annotation_figure",
    "attribution_table",
    "c10_steps",
    "c6_figure",
    "c9_margin_table",
    "convergence_plot",
    "correspondence_figure",
    "crop_boxes",
    "drawn",
    "duplicate_effect",
    "duplicate_table",
    "evolution_mosaic",
    "fig4_figure",
    "fig6_accuracy_table",
    "fig9_figure",
    "figure_pixels",
    "filter_grid",
    "filter_rms_table",
    "frequency_coverage_plot",
    "gap_figure",
    "image_grid",
    "invariance_figure",
    "lattice_table",
    "layer_probe_figure",
    "learning_curve_figure",
    "network_sizes",
    "occlusion_figure",
    "paper_inputs_summary",
    "predictions_table",
    "projection_comparison",
    "randomization_curves",
    "randomization_examples",
    "randomization_panel",
    "saturation_figure",
    "scale_control_figure",
    "shift_consistency_plot",
    "shift_table",
    "signed_distribution",
    "similarity_table",
    "spectrum_table",
    "split_accuracy",
    "structure_table",
    "switches_table",
    "table4",
    "table5",
    "table7",
    "tile_images",
    "to_display",
    "top9_figure",
    "top9_mosaic",
    "training_curves",
    "use_book_style",
]
