"""How a PyTorch state dict maps onto a Keras generator: the table type each arch module fills in.

An arch that can read the reference code's checkpoints gives a `TorchNames` (train/archs/base.py `Arch.torch`):
`infer(shapes)` recognizes its state dict by names and shapes and returns its settings (None: not this arch),
and `table(settings)` lists, for every PyTorch tensor, the Keras layer and weight index it becomes and the
`Layout` change between them. The importer (train/weights/) applies the table forwards, the safetensors export
backwards; a table is the one place an arch's PyTorch names are written. No Keras or PyTorch import here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Layout:
    """One PyTorch -> Keras layout change and its inverse (both pure numpy)."""

    name: str
    to_keras: Callable[[np.ndarray], np.ndarray]
    to_torch: Callable[[np.ndarray], np.ndarray]


PLAIN = Layout("plain", lambda a: a, lambda a: a)
# Conv2d weights: PyTorch (out, in, kh, kw) <-> Keras (kh, kw, in, out).
CONV = Layout("conv", lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))
# Depthwise Conv2d (groups = channels): PyTorch (C, 1, kh, kw) <-> Keras DepthwiseConv2D (kh, kw, C, 1).
DEPTHWISE = Layout("depthwise", lambda a: a.transpose(2, 3, 0, 1), lambda a: a.transpose(2, 3, 0, 1))
# A per-channel scale stored as (1, C, 1, 1) in PyTorch, (C,) in Keras.
CHANNEL_SCALE = Layout("channel_scale", lambda a: a.reshape(-1), lambda a: a.reshape(1, -1, 1, 1))


def reshaped(torch_shape: tuple[int, ...], keras_shape: tuple[int, ...]) -> Layout:
    """Same values in another shape (e.g. a per-head temperature (heads, 1, 1) <-> (heads,))."""
    return Layout(
        f"reshape{tuple(torch_shape)}",
        lambda a: a.reshape(keras_shape),
        lambda a: a.reshape(torch_shape),
    )


def shuffle_order(channels_out: int, block: int = 2) -> np.ndarray:
    """PyTorch's PixelShuffle reads input channel `c * r^2 + i * r + j` for output channel c at sub-pixel (i, j);
    tf.nn.depth_to_space reads `(i * r + j) * C + c`. Index k of the result is the PyTorch channel that Keras
    channel k must hold, so a conv feeding depth_to_space computes what the PyTorch conv feeding PixelShuffle
    did."""
    k = np.arange(channels_out * block * block)
    return (k % channels_out) * block * block + k // channels_out


def shuffle_conv(channels_out: int, block: int = 2) -> Layout:
    """A Conv2d whose output feeds a PixelShuffle: CONV plus the output-channel permutation (`shuffle_order`)."""
    order = shuffle_order(channels_out, block)
    inverse = np.argsort(order)
    return Layout(
        "conv+pixel_shuffle",
        lambda a: CONV.to_keras(a)[..., order],
        lambda a: CONV.to_torch(a[..., inverse]),
    )


def shuffle_bias(channels_out: int, block: int = 2) -> Layout:
    order = shuffle_order(channels_out, block)
    inverse = np.argsort(order)
    return Layout("bias+pixel_shuffle", lambda a: a[order], lambda a: a[inverse])


@dataclass(frozen=True)
class Row:
    """One PyTorch tensor: which Keras layer's weight (by index in `layer.weights`) it becomes, and how."""

    torch_name: str
    layer: str
    index: int
    layout: Layout = PLAIN


@dataclass(frozen=True)
class TorchNames:
    """An arch's PyTorch naming: recognize a state dict (settings or None) and list its rows for settings."""

    reference: str  # the reference implementation these names come from (repo and class)
    infer: Callable[[dict[str, tuple[int, ...]]], dict[str, Any] | None]
    table: Callable[[Any], list[Row]]


def conv_rows(torch_prefix: str, layer: str, bias: bool = True, layout: Layout = CONV) -> list[Row]:
    """A Conv2d's weight (and bias) rows."""
    rows = [Row(f"{torch_prefix}.weight", layer, 0, layout)]
    return rows + [Row(f"{torch_prefix}.bias", layer, 1)] if bias else rows


def indices(names: Any, prefix: str) -> list[int]:
    """Sorted distinct integers i of names `PREFIX.i.…` (how nn.ModuleList / nn.Sequential index children)."""
    found = set()
    for name in names:
        if name.startswith(prefix + "."):
            head = name[len(prefix) + 1 :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)
