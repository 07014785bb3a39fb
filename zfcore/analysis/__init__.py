"""One module per section of the paper: each takes a model and data and returns tensors/dataclasses."""
