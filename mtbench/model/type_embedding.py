"""Type embedding: one learned vector per atom type, in DeePMD-kit's ``TypeEmbedNet`` layout.

The one-hot identity of the ``ntypes`` real types goes through an embedding net; with ``padding`` a zero row is
appended as the embedding of "no neighbour" (type index ``ntypes``). Descriptors that mix types (se_atten) use it
to tell neighbour types apart and append the centre atom's row to their output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from mtbench.model.networks import MLP, Dense, canonical_precision, tf_dtype


class TypeEmbedNet(tf.Module):
    """``E = net(I_ntypes)`` (+ a zero padding row): shape [ntypes (+1), neuron[-1]]."""

    def __init__(self, *, ntypes: int, net: MLP, padding: bool = True, trainable: bool = True,
                 activation_function: str = "Linear", resnet_dt: bool = False, use_tebd_bias: bool = False,
                 precision: str = "float64", type_map: Sequence[str] | None = None,
                 name: str | None = None) -> None:
        super().__init__(name=name)
        self.ntypes = int(ntypes)
        self.net = net
        self.padding = bool(padding)
        self.trainable = bool(trainable)
        self.activation_function = activation_function
        self.resnet_dt = bool(resnet_dt)
        self.use_tebd_bias = bool(use_tebd_bias)
        self.precision = canonical_precision(precision)
        self.type_map = list(type_map) if type_map is not None else None

    @property
    def neuron(self) -> list[int]:
        return [layer.num_out for layer in self.net.layers]

    @property
    def dim_out(self) -> int:
        return self.neuron[-1]

    @classmethod
    def init(cls, ntypes: int, neuron: Sequence[int], *, rng: np.random.Generator,
             activation_function: str = "Linear", resnet_dt: bool = False, use_tebd_bias: bool = False,
             precision: str = "float64", trainable: bool = True, padding: bool = True,
             type_map: Sequence[str] | None = None) -> TypeEmbedNet:
        """Fresh net: embedding-net layers (short-cut where widths allow), bias only with ``use_tebd_bias``."""
        layers, n_in = [], ntypes
        for width in neuron:
            layers.append(Dense.init(n_in, width, rng=rng, activation_function=activation_function, resnet=True,
                                     use_timestep=resnet_dt, precision=precision, trainable=trainable,
                                     bias=use_tebd_bias, idt_mean=0.1))
            n_in = width
        meta = {"@class": "EmbeddingNetwork", "@version": 2, "in_dim": ntypes, "neuron": list(neuron),
                "activation_function": activation_function, "resnet_dt": resnet_dt, "bias": use_tebd_bias,
                "precision": canonical_precision(precision)}
        return cls(ntypes=ntypes, net=MLP(layers, meta), padding=padding, trainable=trainable,
                   activation_function=activation_function, resnet_dt=resnet_dt, use_tebd_bias=use_tebd_bias,
                   precision=precision, type_map=type_map)

    def __call__(self) -> tf.Tensor:
        eye = tf.eye(self.ntypes, dtype=tf_dtype(self.precision))
        embed = self.net(eye)
        if self.padding:
            embed = tf.concat([embed, tf.zeros_like(embed[:1])], axis=0)
        return embed

    def to_dict(self) -> dict[str, Any]:
        return {"@class": "TypeEmbedNet", "@version": 2, "ntypes": self.ntypes, "neuron": self.neuron,
                "resnet_dt": self.resnet_dt, "precision": self.precision,
                "activation_function": self.activation_function, "trainable": self.trainable,
                "padding": self.padding, "use_econf_tebd": False, "use_tebd_bias": self.use_tebd_bias,
                "type_map": self.type_map, "embedding": self.net.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TypeEmbedNet:
        if data.get("use_econf_tebd"):
            raise ValueError("use_econf_tebd (electronic-configuration type embedding) is not supported")
        trainable = bool(data.get("trainable", True))
        return cls(ntypes=data["ntypes"], net=MLP.from_dict(data["embedding"], trainable=trainable),
                   padding=data.get("padding", False), trainable=trainable,
                   activation_function=data.get("activation_function", "tanh"),
                   resnet_dt=data.get("resnet_dt", False),
                   use_tebd_bias=data.get("use_tebd_bias", True),  # absent in version 1, which always had a bias
                   precision=data.get("precision", "float64"), type_map=data.get("type_map"))
