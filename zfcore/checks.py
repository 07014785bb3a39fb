"""The argument validators of zfcore, in one place: each raises one ``ValueError`` naming the value and the valid ones.

Every public function of zfcore checks its arguments before any work, with the same checks and the same
wording (``name=value is not valid; give ...``). The validators return the value in the form the caller
works with (an ``int``, a tuple of layer names, a tensor of labels or boxes), so that a checked value and
a used value cannot drift apart.

- :func:`check_whole`, :func:`check_positive`: whole numbers (``int`` or a NumPy integer, never a ``bool``
  or a float such as ``2.0``), with a minimum (and a maximum).
- :func:`check_number`: a finite real number (not a ``bool``) in a range.
- :func:`check_choice`, :func:`check_bool`: one of a few named values; ``True`` or ``False``.
- :func:`check_finite`: no NaN or infinite value in a tensor, naming how many and where.
- :func:`check_pixels`: uint8 ``[N, H, W, 3]`` pixels, as the caches store them.
- :func:`check_labels`: whole-number classes in ``0 .. num_classes - 1`` (floats and bools refused, not truncated).
- :func:`check_layers`: one layer name or a sequence of them (a lone string is one name).
- :func:`check_boxes`: ``[N, 4]`` boxes ``(x0, y0, x1, y1)`` inside the image, finite, not reversed.

This module imports nothing from zfcore, so that every module may use it.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["check_bool", "check_boxes", "check_choice", "check_finite", "check_labels", "check_layers", "check_number",
           "check_pixels", "check_positive", "check_whole"]

_SHOWN = 8
"""How many values of a long argument a message shows."""


def check_whole(name: str, value: object, minimum: int = 0, maximum: int | None = None) -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is a whole number (not a bool) in ``minimum .. maximum``.

    Args:
        name: the argument's name, for the message.
        value: an ``int`` or a NumPy integer; floats (even ``2.0``), bools and strings are refused.
        minimum: the smallest valid value.
        maximum: the largest valid value (default: none).
    """
    valid = f"of at least {minimum}" if maximum is None else f"in {minimum} .. {maximum}"
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name}={value!r} is not valid; give a whole number {valid} (an int, not "
                         f"{type(value).__name__})")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name}={value!r} is not valid; give a whole number {valid}")
    return int(value)


def check_positive(name: str, value: object) -> int:
    """``value`` as an ``int``; ``ValueError`` unless it is a whole number (not a bool) of at least 1."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name}={value!r} is not valid; give a positive integer (a whole number of at least 1)")
    return int(value)


def check_number(name: str, value: object, valid: str, in_range: Callable[[float], bool]) -> float:
    """``value`` as a ``float``; ``ValueError`` unless it is a finite real number (not a bool) for which ``in_range`` holds.

    Args:
        name: the argument's name.
        value: the number.
        valid: the valid range in words, e.g. ``"> 0"`` or ``"in [0, 1)"``.
        in_range: the range as a test.
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not in_range(value):
        raise ValueError(f"{name}={value!r} is not valid; give a finite number {valid}")
    return float(value)


def check_choice(name: str, value: object, valid: Sequence[object], what: str = "values") -> None:
    """``ValueError`` unless ``value`` is one of ``valid``; the message lists them as ``valid {what}: (...)``."""
    try:
        known = value in valid
    except TypeError:  # an unhashable value asked of a set or mapping
        known = False
    if not known:
        raise ValueError(f"{name}={value!r} is not valid; valid {what}: {tuple(valid)}")


def check_bool(name: str, value: object) -> bool:
    """``value``; ``ValueError`` unless it is ``True`` or ``False`` (not ``1``, ``"yes"`` or a NumPy bool)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r} is not valid; give True or False")
    return value


def check_finite(name: str, tensor: torch.Tensor | np.ndarray, *, per: str = "images") -> None:
    """``ValueError`` naming how many values of ``tensor`` are NaN or infinite, and in which rows.

    One ``torch.isfinite(...).all()`` when all is well; rows are counted along dimension 0.

    Args:
        name: what to call the values in the message (``"images"``, ``"pixels"``, ``"boxes"``).
        tensor: a tensor or array ``[N, ...]`` (integer ones are always finite).
        per: what one row is, for the message.
    """
    if isinstance(tensor, np.ndarray):
        if tensor.dtype.kind not in "fc":
            return
        tensor = torch.from_numpy(np.ascontiguousarray(tensor))
    if not (tensor.is_floating_point() or tensor.is_complex()) or bool(torch.isfinite(tensor).all()):
        return
    rows = tensor.reshape(1, -1) if tensor.dim() == 0 else tensor.reshape(tensor.shape[0], -1)
    bad_per_row = (~torch.isfinite(rows)).sum(1)
    indices = bad_per_row.nonzero().flatten().tolist()
    shown = ", ".join(map(str, indices[:10])) + (", ..." if len(indices) > 10 else "")
    raise ValueError(
        f"{name} have {int(bad_per_row.sum())} non-finite values (NaN or inf) in {len(indices)} of "
        f"{rows.shape[0]} {per} (indices {shown}); drop those {per} or repair them (e.g. torch.nan_to_num)"
    )


def check_pixels(name: str, pixels: np.ndarray | torch.Tensor) -> None:
    """``ValueError`` unless ``pixels`` are uint8 ``[N, H, W, 3]`` images (an array, memory map or tensor).

    Float pixels are refused (naming their non-finite values and images first, if any): the analyses
    normalise stored 0-255 pixels themselves (:func:`zfcore.data.loader.pixel_batches`).
    """
    if not isinstance(pixels, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be a uint8 array or tensor [N, H, W, 3], got {type(pixels).__name__}")
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"{name} have shape {tuple(pixels.shape)}; expected [N, H, W, 3] uint8")
    if pixels.dtype in (np.uint8, torch.uint8):
        return
    check_finite(name, pixels)
    raise ValueError(f"{name} have dtype {pixels.dtype}; expected uint8 0-255 pixels [N, H, W, 3] "
                     "(as the caches store them): the analyses normalise them themselves")


def check_labels(name: str, labels: object, num_classes: int, count: int | None = None) -> torch.Tensor:
    """``labels`` as an int64 CPU tensor ``[N]``; ``ValueError`` unless they are whole-number classes in range.

    Args:
        name: the argument's name (``"labels"``, or ``"label"`` for one).
        labels: one class or a sequence, array or tensor of them. Floats (``2.7``, and ``2.0`` too) and
            bools are refused, never truncated or counted as 0 and 1.
        num_classes: classes are ``0 .. num_classes - 1``.
        count: the number of labels needed (one per image), if fixed.
    """
    valid = f"valid classes: 0 .. {num_classes - 1}"
    if isinstance(labels, torch.Tensor):
        values = labels.detach().cpu()
        whole = not (values.dtype == torch.bool or values.is_floating_point() or values.is_complex())
        kind = str(values.dtype).removeprefix("torch.")
    else:
        leaves = list(_flatten(labels.tolist() if isinstance(labels, np.ndarray) else labels))
        odd = [leaf for leaf in leaves if isinstance(leaf, (bool, np.bool_)) or not isinstance(leaf, Integral)]
        whole, kind = not odd, type(odd[0]).__name__ if odd else ""
        values = torch.as_tensor(np.asarray(labels, dtype=np.int64)) if whole else None
    if not whole:
        raise ValueError(f"{name}={_show(labels)} is not valid; give whole-number classes, not {kind}; {valid}")
    values = values.reshape(-1).long()
    if count is not None and len(values) != count:
        raise ValueError(f"{name}: {len(values)} labels for {count} images is not valid; give {count} integer classes, "
                         "one label per image")
    outside = values[(values < 0) | (values >= num_classes)]
    if len(outside):
        raise ValueError(f"{name}={_show(labels)} is not valid; {outside.tolist()[:_SHOWN]} out of range; {valid}")
    return values


def check_layers(name: str, layers: str | Sequence[str], valid: Sequence[str], *, what: str = "layer",
                 allow_empty: bool = False) -> tuple[str, ...]:
    """``layers`` as a tuple of names; ``ValueError`` unless each is one of ``valid``.

    Args:
        name: the argument's name (``"layers"``).
        layers: one layer name (a lone string is one name, never its characters) or a sequence of them.
        valid: the valid names, in order.
        what: what a valid name is, for the message (``"layer"``, ``"conv layer"``).
        allow_empty: accept no layer at all.
    """
    valid = tuple(valid)
    if isinstance(layers, str):
        chosen: tuple[object, ...] = (layers,)
    else:
        try:
            chosen = tuple(layers)
        except TypeError:
            raise ValueError(f"{name}={layers!r} is not valid; give one {what} name or a sequence of them, "
                             f"out of {valid}") from None
    if not chosen and not allow_empty:
        raise ValueError(f"{name}={layers!r} is not valid; give at least one {what} of {valid}")
    for layer in chosen:
        if not isinstance(layer, str) or layer not in valid:
            raise ValueError(f"layer={layer!r} is not valid; valid {what}s: {valid}")
    return chosen  # type: ignore[return-value]


def check_boxes(name: str, boxes: object, size: int | None, *, inclusive: bool = False, whole: bool = False,
                count: int | None = None) -> torch.Tensor:
    """``boxes`` as a CPU tensor ``[N, 4]`` of ``(x0, y0, x1, y1)``; ``ValueError`` unless each lies in the image.

    Args:
        name: the argument's name.
        boxes: ``[N, 4]`` pixel coordinates (an array, tensor or nested sequence).
        size: the image's side; ``None``: no upper bound is known.
        inclusive: ``True``: the corners are pixels of the box, ``0 <= x0 <= x1 <= size - 1`` (a box may
            be one pixel wide, as some of Tiny ImageNet's are); ``False``: ends exclusive,
            ``0 <= x0 < x1 <= size``. The same for ``y``.
        whole: the coordinates must be whole numbers (the result is int64; else float64).
        count: the number of boxes needed (one per image), if fixed.
    """
    tensor = None
    if isinstance(boxes, torch.Tensor):
        tensor = boxes.detach().cpu()
    else:
        try:
            array = np.asarray(boxes)
        except ValueError:  # ragged rows
            array = np.asarray(boxes, dtype=object)
        if array.dtype.kind in "iuf":
            tensor = torch.from_numpy(np.ascontiguousarray(array))
    if tensor is None or tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name}={_show(boxes)} is not valid; give numbers [N, 4], (x0, y0, x1, y1) in pixels")
    if tensor.dim() != 2 or tensor.shape[1] != 4 or (count is not None and len(tensor) != count):
        expected = f"({count}, 4): one box per image" if count is not None else "[N, 4]: one box per row"
        raise ValueError(f"{name} have shape {tuple(tensor.shape)}; expected {expected}, (x0, y0, x1, y1)")
    check_finite(name, tensor, per="boxes")
    values = tensor.double()
    if whole and bool((values != values.floor()).any()):
        row = int((values != values.floor()).any(1).nonzero()[0])
        raise ValueError(f"{name}[{row}]={tuple(tensor[row].tolist())} is not valid; give whole pixel numbers")
    if inclusive:
        top = "" if size is None else f" <= {size - 1}"
        rule = f"0 <= x0 <= x1{top} and 0 <= y0 <= y1{top} (corners inclusive)"
        inside = (values[:, 0] <= values[:, 2]) & (values[:, 1] <= values[:, 3])
        limit = None if size is None else size - 1
    else:
        top = "" if size is None else f" <= {size}"
        rule = f"0 <= x0 < x1{top} and 0 <= y0 < y1{top} (ends exclusive)"
        inside = (values[:, 0] < values[:, 2]) & (values[:, 1] < values[:, 3])
        limit = size
    inside &= (values[:, :2] >= 0).all(1)
    if limit is not None:
        inside &= (values[:, 2:] <= limit).all(1)
    if not bool(inside.all()):
        row = int((~inside).nonzero()[0])
        raise ValueError(f"{name}[{row}]={tuple(tensor[row].tolist())} is not valid; give {rule}")
    return values.long() if whole else values


def _flatten(items: object):
    """The leaves of nested lists, tuples and ranges (one scalar is its own leaf)."""
    if isinstance(items, (list, tuple, range)):
        for item in items:
            yield from _flatten(item)
    else:
        yield items


def _show(values: object) -> str:
    """``values`` for a message: a scalar as it is, a sequence by its first few values."""
    if isinstance(values, np.generic):
        values = values.item()
    if isinstance(values, (torch.Tensor, np.ndarray)):
        values = values.tolist()
    if isinstance(values, (list, tuple)) and len(values) > _SHOWN:
        return "[" + ", ".join(map(repr, values[:_SHOWN])) + ", ...]"
    return repr(values)
