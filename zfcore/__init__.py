"""zfcore: the algorithms behind the zfbook, a reproduction of Zeiler & Fergus (2014)."""

from zfcore.weights import ReferenceWeights, load_reference
from zfcore.models import alexnet_style, renormalize_filters, zfnet

__all__ = ["ReferenceWeights", "alexnet_style", "load_reference", "renormalize_filters", "zfnet"]
__version__ = "0.1.0"
