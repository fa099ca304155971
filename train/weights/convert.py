"""Apply an arch's PyTorch table (train/archs/torch_layout.py) to a Keras generator, both ways.

`to_keras` fills a built generator from a PyTorch state dict: every tensor must have a row, every row a tensor,
every converted shape must be the Keras weight's; the first problem is one DataError naming the PyTorch key and
both shapes. `to_torch` is the inverse (the safetensors export), so `to_keras(to_torch(model))` reproduces the
model's weights bit for bit: the layout changes are transposes, reshapes and permutations only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import DataError
from train.archs.torch_layout import Row


def _layer_weight(model: Any, row: Row) -> Any:
    try:
        layer = model.get_layer(row.layer)
    except ValueError:
        raise DataError(
            f"{row.torch_name}: the table names a Keras layer {row.layer!r} the model lacks"
        ) from None
    return layer.weights[row.index]


def to_keras(model: Any, table: list[Row], tensors: dict[str, np.ndarray], where: str) -> None:
    """Set `model`'s weights from `tensors` (PyTorch names and layouts) through `table`."""
    expected = {row.torch_name for row in table}
    unknown = sorted(set(tensors) - expected)
    if unknown:
        raise DataError(f"{where}: unexpected key {unknown[0]!r} ({len(unknown)} unexpected in all)")
    missing = [row.torch_name for row in table if row.torch_name not in tensors]
    if missing:
        raise DataError(f"{where}: missing key {missing[0]!r} ({len(missing)} missing in all)")
    covered = {(row.layer, row.index) for row in table}
    for layer in model.layers:
        for i, weight in enumerate(layer.weights):
            if (layer.name, i) not in covered:  # a table gap would leave a random weight in the model
                raise DataError(f"{where}: no PyTorch key fills Keras weight {layer.name}/{weight.name}")
    updates = []
    for row in table:
        variable = _layer_weight(model, row)
        source = np.asarray(tensors[row.torch_name])
        try:
            value = row.layout.to_keras(source)
        except ValueError:
            value = None
        target = tuple(variable.shape)
        if value is None or tuple(value.shape) != target:
            raise DataError(
                f"{where}: key {row.torch_name!r} has shape {tuple(source.shape)}, but the model needs "
                f"{_torch_shape(row, target)} (Keras {row.layer} {target})"
            )
        updates.append((variable, value))
    for variable, value in updates:  # only once everything fits: a refused file changes nothing
        variable.assign(value.astype(variable.dtype))


def _torch_shape(row: Row, keras_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The PyTorch shape a Keras weight of `keras_shape` corresponds to (for error messages)."""
    try:
        return tuple(row.layout.to_torch(np.zeros(keras_shape, np.float32)).shape)
    except ValueError:
        return keras_shape


def to_torch(model: Any, table: list[Row]) -> dict[str, np.ndarray]:
    """`model`'s weights under their PyTorch names and layouts (float32, contiguous)."""
    out = {}
    for row in table:
        value = np.asarray(_layer_weight(model, row).numpy(), np.float32)
        out[row.torch_name] = np.ascontiguousarray(row.layout.to_torch(value))
    return out
