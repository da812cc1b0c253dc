"""Dense layers and MLPs whose weights live in DeePMD-kit's serialized layout.

Every network here is built from, and written back to, the dict format of DeePMD-kit's backend-independent
serialization (``@class: Layer`` / ``EmbeddingNetwork`` / ``FittingNetwork``), so a model moves between mtbench
and DeePMD-kit without any renaming. The arithmetic follows DeePMD-kit's reference layer: ``y = act(xW + b)``,
times ``idt`` if present, plus ``x`` (equal widths) or ``[x, x]`` (doubled width) when ``resnet`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.kernels import add_tiled, dense_product

PRECISIONS = {"float64": tf.float64, "float32": tf.float32, "default": tf.float64, "double": tf.float64,
              "single": tf.float32, "float16": tf.float16, "half": tf.float16}
NP_PRECISIONS = {"float64": np.float64, "float32": np.float32, "float16": np.float16}


def canonical_precision(precision: str | None) -> str:
    """DeePMD's precision names ('default', 'double', ...) -> 'float64' / 'float32' / 'float16'."""
    name = (precision or "default").lower()
    return {"default": "float64", "double": "float64", "single": "float32", "half": "float16"}.get(name, name)


def tf_dtype(precision: str | None) -> tf.DType:
    return PRECISIONS[canonical_precision(precision)]


def _gelu(x: tf.Tensor) -> tf.Tensor:
    c = tf.constant(math.sqrt(2.0 / math.pi), dtype=x.dtype)  # not tf.cast(float): that rounds to float32 first
    return 0.5 * x * (1.0 + tf.tanh(c * (x + tf.constant(0.044715, dtype=x.dtype) * x * x * x)))


ACTIVATIONS = {
    "tanh": tf.tanh,
    "relu": tf.nn.relu,
    "relu6": tf.nn.relu6,
    "softplus": tf.nn.softplus,
    "sigmoid": tf.sigmoid,
    "gelu": _gelu,
    "gelu_tf": _gelu,
    "silu": tf.nn.silu,
    "none": tf.identity,
    "linear": tf.identity,
}


def activation_fn(name: str | None):
    key = (name or "none").lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation_function {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[key]


class Dense(tf.Module):
    """One DeePMD layer: ``act(x W + b) * idt`` plus the optional identity / doubled-identity shortcut."""

    def __init__(self, w: np.ndarray, b: np.ndarray | None, idt: np.ndarray | None, *,
                 activation_function: str | None, resnet: bool, precision: str, trainable: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.precision = canonical_precision(precision)
        dtype = tf_dtype(self.precision)
        self.activation_function = (activation_function or "none")
        self.resnet = bool(resnet)
        self.trainable = bool(trainable)
        self.w = tf.Variable(np.asarray(w), dtype=dtype, trainable=trainable, name="w")
        self.b = None if b is None else tf.Variable(np.asarray(b).ravel(), dtype=dtype, trainable=trainable, name="b")
        self.idt = None if idt is None else tf.Variable(np.asarray(idt).ravel(), dtype=dtype, trainable=trainable,
                                                        name="idt")
        self._act = activation_fn(self.activation_function)

    @property
    def num_in(self) -> int:
        return int(self.w.shape[0])

    @property
    def num_out(self) -> int:
        return int(self.w.shape[1])

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        if self.num_in == 1:  # an outer product: cheaper as a broadcast than as a K=1 matmul
            y = x * self.w[0]
        else:
            y = dense_product(x, self.w)
        if self.b is not None:
            y = y + self.b
        y = self._act(y)
        if self.idt is not None:
            y = y * self.idt
        if self.resnet and self.num_out == self.num_in:
            y = y + x
        elif self.resnet and self.num_out == 2 * self.num_in:
            y = add_tiled(y, x)  # y + [x, x]
        return y

    @classmethod
    def init(cls, num_in: int, num_out: int, *, rng: np.random.Generator, activation_function: str | None,
             resnet: bool, use_timestep: bool, precision: str, trainable: bool = True, bias: bool = True,
             idt_mean: float = 0.1, name: str | None = None) -> "Dense":
        """Fresh layer with DeePMD's initialisation (W ~ N(0, 1/(in+out)), b ~ N(0, 1), idt ~ N(mean, 1e-3))."""
        np_dtype = NP_PRECISIONS[canonical_precision(precision)]
        use_timestep = use_timestep and (num_out == num_in or num_out == 2 * num_in)
        w = rng.normal(size=(num_in, num_out), scale=1.0 / math.sqrt(num_in + num_out)).astype(np_dtype)
        b = rng.normal(size=(num_out,)).astype(np_dtype) if bias else None
        idt = (rng.normal(size=(num_out,), scale=1e-3) + idt_mean).astype(np_dtype) if use_timestep else None
        return cls(w, b, idt, activation_function=activation_function, resnet=resnet, precision=precision,
                   trainable=trainable, name=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "@class": "Layer",
            "@version": 2,
            "bias": self.b is not None,
            "use_timestep": self.idt is not None,
            "activation_function": self.activation_function,
            "resnet": self.resnet,
            "precision": self.precision,
            "trainable": self.trainable,
            "@variables": {
                "w": self.w.numpy(),
                "b": None if self.b is None else self.b.numpy(),
                "idt": None if self.idt is None else self.idt.numpy(),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, trainable: bool | None = None) -> "Dense":
        var = data["@variables"]
        return cls(var["w"], var.get("b"), var.get("idt"), activation_function=data.get("activation_function"),
                   resnet=data.get("resnet", False), precision=data.get("precision", "float64"),
                   trainable=data.get("trainable", True) if trainable is None else trainable)


class MLP(tf.Module):
    """A stack of :class:`Dense` layers, serialized as an ``EmbeddingNetwork`` or a ``FittingNetwork``."""

    def __init__(self, layers: Sequence[Dense], meta: dict[str, Any], name: str | None = None) -> None:
        super().__init__(name=name)
        self.layers = list(layers)
        self.meta = dict(meta)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def precision(self) -> str:
        return canonical_precision(self.meta.get("precision", "float64"))

    @property
    def dtype(self) -> tf.DType:
        return tf_dtype(self.precision)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def embedding(cls, in_dim: int, neuron: Sequence[int], *, rng: np.random.Generator,
                  activation_function: str = "tanh", resnet_dt: bool = False, precision: str = "float64",
                  trainable: bool = True, name: str | None = None) -> "MLP":
        """DeePMD embedding net: every layer may short-cut (equal or doubled width)."""
        layers, n_in = [], in_dim
        for width in neuron:
            layers.append(Dense.init(n_in, width, rng=rng, activation_function=activation_function, resnet=True,
                                     use_timestep=resnet_dt, precision=precision, trainable=trainable,
                                     idt_mean=1.0))
            n_in = width
        meta = {"@class": "EmbeddingNetwork", "@version": 2, "in_dim": in_dim, "neuron": list(neuron),
                "activation_function": activation_function, "resnet_dt": resnet_dt, "bias": True,
                "precision": canonical_precision(precision)}
        return cls(layers, meta, name=name)

    @classmethod
    def fitting(cls, in_dim: int, out_dim: int, neuron: Sequence[int], *, rng: np.random.Generator,
                activation_function: str = "tanh", resnet_dt: bool = True, precision: str = "float64",
                trainable: bool | Sequence[bool] = True, bias_out: bool = True,
                shared: Sequence["Dense | None"] | None = None, name: str | None = None) -> "MLP":
        """DeePMD fitting net: hidden layers (short-cut where widths allow) and a linear output layer.

        ``shared[k]``, when given, is an existing layer reused in place of a fresh one (``layer_name`` sharing).
        """
        if isinstance(trainable, bool):
            trainable = [trainable] * (len(neuron) + 1)
        shared = list(shared) if shared is not None else [None] * (len(neuron) + 1)
        layers, n_in = [], in_dim
        for k, width in enumerate(neuron):
            layer = shared[k] or Dense.init(n_in, width, rng=rng, activation_function=activation_function,
                                            resnet=True, use_timestep=resnet_dt, precision=precision,
                                            trainable=trainable[k], idt_mean=0.1)
            layers.append(layer)
            n_in = width
        layers.append(shared[len(neuron)] or Dense.init(n_in, out_dim, rng=rng, activation_function=None,
                                                        resnet=False, use_timestep=False, precision=precision,
                                                        trainable=trainable[-1], bias=bias_out))
        meta = {"@class": "FittingNetwork", "@version": 1, "in_dim": in_dim, "out_dim": out_dim,
                "neuron": list(neuron), "activation_function": activation_function, "resnet_dt": resnet_dt,
                "precision": canonical_precision(precision), "bias_out": bias_out}
        return cls(layers, meta, name=name)

    # --- serialization ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {**self.meta, "layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, trainable: bool | Sequence[bool] | None = None,
                  shared: Sequence[Dense | None] | None = None, name: str | None = None) -> "MLP":
        layers_data = data["layers"]
        if isinstance(trainable, bool):
            trainable = [trainable] * len(layers_data)
        layers = []
        for k, ld in enumerate(layers_data):
            if shared is not None and shared[k] is not None:
                layers.append(shared[k])
            else:
                layers.append(Dense.from_dict(ld, trainable=None if trainable is None else trainable[k]))
        meta = {k: v for k, v in data.items() if k != "layers"}
        return cls(layers, meta, name=name)


class NetworkCollection(tf.Module):
    """Networks indexed by atom type(s), as DeePMD's ``NetworkCollection`` (index = sum_k t_k * ntypes**k)."""

    def __init__(self, ndim: int, ntypes: int, network_type: str, networks: Sequence[MLP | None],
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.ndim, self.ntypes, self.network_type = ndim, ntypes, network_type
        self.networks = list(networks)

    def index(self, *types: int) -> int:
        return sum(t * self.ntypes ** k for k, t in enumerate(types))

    def get(self, *types: int) -> MLP | None:
        return self.networks[self.index(*types)]

    def to_dict(self) -> dict[str, Any]:
        return {"@class": "NetworkCollection", "@version": 1, "ndim": self.ndim, "ntypes": self.ntypes,
                "network_type": self.network_type,
                "networks": [None if n is None else n.to_dict() for n in self.networks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, trainable: bool | Sequence[bool] | None = None,
                  shared: Sequence[Sequence[Dense | None] | None] | None = None) -> "NetworkCollection":
        nets = []
        for k, nd in enumerate(data["networks"]):
            if nd is None:
                nets.append(None)
            else:
                nets.append(MLP.from_dict(nd, trainable=trainable, shared=None if shared is None else shared[k]))
        return cls(data["ndim"], data["ntypes"], data.get("network_type", "network"), nets)
