"""Fitting nets: per-atom features in, per-atom outputs out (energy, or tensor coefficients).

The common part (DeePMD's ``GeneralFitting``): optional frame/atomic parameters appended to the descriptor,
one network per atom type (or one shared network when the descriptor mixes types), a per-type output bias, and
zero output for excluded atom types. Weights use DeePMD-kit's serialized layout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from mtbench.model.networks import MLP, Dense, NetworkCollection, canonical_precision, tf_dtype
from mtbench.model.registry import ClassRegistry
from mtbench.spec import registry as reg

_CLASSES: ClassRegistry[type[Fitting]] = ClassRegistry("fitting", reg.FITTINGS)
FITTINGS: dict[str, type[Fitting]] = _CLASSES.classes
"""Canonical fitting type (a key of :data:`mtbench.spec.registry.FITTINGS`) -> its class."""


register_fitting = _CLASSES.register  # class decorator: @register_fitting("<canonical type>")
fitting_class = _CLASSES.lookup  # the class of a fitting type or alias


SharedLayers = dict[tuple[str, int], Dense]  # (layer_name, atom type or -1) -> the one shared layer


def _stitch_by_type(x: tf.Tensor, atype_flat: tf.Tensor, ntypes: int, fns: Sequence[Callable | None],
                    out_dim: int) -> tf.Tensor:
    """Apply ``fns[t]`` to the rows of type t only; rows of types without a function get zeros."""
    rows = tf.range(tf.shape(atype_flat)[0])
    parts = tf.dynamic_partition(x, atype_flat, ntypes)
    idx = tf.dynamic_partition(rows, atype_flat, ntypes)
    outs = []
    for t in range(ntypes):
        if fns[t] is None:
            outs.append(tf.zeros([tf.shape(parts[t])[0], out_dim], dtype=x.dtype))
        else:
            outs.append(fns[t](parts[t]))
    return tf.dynamic_stitch(idx, outs)


class Fitting(tf.Module):
    """DeePMD's general fitting: ``net_t([D_i, fparam, aparam]) + bias_atom_e[t]``, zero for excluded types."""

    type_name: ClassVar[str] = ""
    var_name: ClassVar[str] = ""

    def __init__(self, *, ntypes: int, dim_descrpt: int, neuron: Sequence[int], nets: NetworkCollection,
                 bias_atom_e: np.ndarray, resnet_dt: bool = True, numb_fparam: int = 0, numb_aparam: int = 0,
                 fparam_avg: np.ndarray | None = None, fparam_inv_std: np.ndarray | None = None,
                 aparam_avg: np.ndarray | None = None, aparam_inv_std: np.ndarray | None = None,
                 activation_function: str = "tanh", precision: str = "float64", mixed_types: bool = False,
                 exclude_types: Sequence[int] = (), trainable: bool | Sequence[bool] = True,
                 layer_name: Sequence[str | None] | None = None, rcond: float | None = None,
                 type_map: Sequence[str] | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.ntypes, self.dim_descrpt = int(ntypes), int(dim_descrpt)
        self.neuron = [int(n) for n in neuron]
        self.nets = nets
        self.resnet_dt = bool(resnet_dt)
        self.numb_fparam, self.numb_aparam = int(numb_fparam), int(numb_aparam)
        self.activation_function = activation_function
        self.precision = canonical_precision(precision)
        self.mixed_types = bool(mixed_types)
        self.exclude_types = [int(t) for t in exclude_types]
        self.trainable = trainable
        self.layer_name = None if layer_name is None else list(layer_name)
        self.rcond = rcond
        self.type_map = list(type_map) if type_map is not None else None
        odim = self.net_out_dim
        self.bias_atom_e = tf.Variable(np.asarray(bias_atom_e, np.float64).reshape(self.ntypes, odim),
                                       trainable=False, name="bias_atom_e")
        f = self.numb_fparam
        a = self.numb_aparam
        self.fparam_avg = tf.Variable(np.zeros(f) if fparam_avg is None else np.asarray(fparam_avg, np.float64),
                                      trainable=False, name="fparam_avg")
        self.fparam_inv_std = tf.Variable(np.ones(f) if fparam_inv_std is None
                                          else np.asarray(fparam_inv_std, np.float64), trainable=False,
                                          name="fparam_inv_std")
        self.aparam_avg = tf.Variable(np.zeros(a) if aparam_avg is None else np.asarray(aparam_avg, np.float64),
                                      trainable=False, name="aparam_avg")
        self.aparam_inv_std = tf.Variable(np.ones(a) if aparam_inv_std is None
                                          else np.asarray(aparam_inv_std, np.float64), trainable=False,
                                          name="aparam_inv_std")

    # --- subclass hooks -----------------------------------------------------------------------------------
    @property
    def net_out_dim(self) -> int:
        raise NotImplementedError

    @property
    def sel_type(self) -> list[int]:
        return [t for t in range(self.ntypes) if t not in self.exclude_types]

    def _extra_dict(self) -> dict[str, Any]:
        return {}

    def _extra_variables(self) -> dict[str, np.ndarray]:
        return {}

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def _common_from_config(cls, config: dict[str, Any], *, ntypes: int, dim_descrpt: int, out_dim: int,
                            mixed_types: bool, rng: np.random.Generator, shared: SharedLayers | None,
                            type_map: Sequence[str]) -> dict[str, Any]:
        """Constructor kwargs for a fresh fitting from its spec section (DeePMD input keys)."""
        neuron = list(config.get("neuron", [120, 120, 120]))
        numb_fparam, numb_aparam = int(config.get("numb_fparam", 0)), int(config.get("numb_aparam", 0))
        in_dim = dim_descrpt + numb_fparam + numb_aparam
        precision = config.get("precision", "float64")
        layer_name = config.get("layer_name")
        trainable = config.get("trainable", True)
        nets = []
        for t in ([None] if mixed_types else range(ntypes)):
            shared_here = None
            if layer_name is not None and shared is not None:
                shared_here = [shared.get((nm, -1 if t is None else t)) if nm else None for nm in layer_name]
            net = MLP.fitting(in_dim, out_dim, neuron, rng=rng,
                              activation_function=config.get("activation_function", "tanh"),
                              resnet_dt=config.get("resnet_dt", True), precision=precision, trainable=trainable,
                              shared=shared_here)
            if layer_name is not None and shared is not None:
                for nm, layer in zip(layer_name, net.layers):
                    if nm:
                        shared.setdefault((nm, -1 if t is None else t), layer)
            nets.append(net)
        sel_type = config.get("sel_type")
        exclude = [] if sel_type is None else [t for t in range(ntypes) if t not in sel_type]
        return dict(ntypes=ntypes, dim_descrpt=dim_descrpt, neuron=neuron,
                    nets=NetworkCollection(0 if mixed_types else 1, ntypes, "fitting_network", nets),
                    bias_atom_e=np.zeros((ntypes, out_dim)), resnet_dt=config.get("resnet_dt", True),
                    numb_fparam=numb_fparam, numb_aparam=numb_aparam,
                    activation_function=config.get("activation_function", "tanh"), precision=precision,
                    mixed_types=mixed_types, exclude_types=exclude, trainable=trainable, layer_name=layer_name,
                    rcond=config.get("rcond"), type_map=type_map)

    @classmethod
    def _common_from_dict(cls, data: dict[str, Any], shared: SharedLayers | None = None) -> dict[str, Any]:
        var = data["@variables"]
        layer_name = data.get("layer_name")
        mixed = bool(data.get("mixed_types", False))
        shared_lists = None
        if layer_name is not None and shared is not None:
            shared_lists = []
            nets_data = data["nets"]["networks"]
            for k in range(len(nets_data)):
                t = -1 if mixed else k
                shared_lists.append([shared.get((nm, t)) if nm else None for nm in layer_name])
        nets = NetworkCollection.from_dict(data["nets"], trainable=data.get("trainable"), shared=shared_lists)
        if layer_name is not None and shared is not None:
            for k, net in enumerate(nets.networks):
                if net is None:
                    continue
                for nm, layer in zip(layer_name, net.layers):
                    if nm:
                        shared.setdefault((nm, -1 if mixed else k), layer)
        return dict(ntypes=data["ntypes"], dim_descrpt=data["dim_descrpt"], neuron=data["neuron"], nets=nets,
                    bias_atom_e=var["bias_atom_e"], resnet_dt=data.get("resnet_dt", True),
                    numb_fparam=data.get("numb_fparam", 0), numb_aparam=data.get("numb_aparam", 0),
                    fparam_avg=var.get("fparam_avg"), fparam_inv_std=var.get("fparam_inv_std"),
                    aparam_avg=var.get("aparam_avg"), aparam_inv_std=var.get("aparam_inv_std"),
                    activation_function=data.get("activation_function", "tanh"),
                    precision=data.get("precision", "float64"), mixed_types=mixed,
                    exclude_types=data.get("exclude_types", []), trainable=data.get("trainable", True),
                    layer_name=layer_name, rcond=data.get("rcond"), type_map=data.get("type_map"))

    @classmethod
    def build(cls, config: dict[str, Any], *, ntypes: int, dim_descrpt: int, dim_emb: int, mixed_types: bool,
              rng: np.random.Generator, shared: SharedLayers | None, type_map: Sequence[str]) -> "Fitting":
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any], shared: SharedLayers | None = None) -> "Fitting":
        raise NotImplementedError

    def to_dict(self, *, for_deepmd: bool = False) -> dict[str, Any]:
        """Serialized fitting; ``for_deepmd`` drops mtbench-only keys DeePMD-kit's reference refuses."""
        def arr(v: tf.Variable | None) -> np.ndarray | None:
            return None if v is None or int(np.prod(v.shape)) == 0 else v.numpy()

        data = {
            "@class": "Fitting", "@version": 4, "type": self.type_name, "var_name": self.var_name,
            "ntypes": self.ntypes, "dim_descrpt": self.dim_descrpt, "neuron": list(self.neuron),
            "resnet_dt": self.resnet_dt, "numb_fparam": self.numb_fparam, "numb_aparam": self.numb_aparam,
            "dim_case_embd": 0, "default_fparam": None, "rcond": self.rcond,
            "activation_function": self.activation_function, "precision": self.precision,
            "mixed_types": self.mixed_types, "exclude_types": list(self.exclude_types),
            "nets": self.nets.to_dict(),
            "@variables": {
                "bias_atom_e": self.bias_atom_e.numpy(), "case_embd": None,
                "fparam_avg": arr(self.fparam_avg), "fparam_inv_std": arr(self.fparam_inv_std),
                "aparam_avg": arr(self.aparam_avg), "aparam_inv_std": arr(self.aparam_inv_std),
                **self._extra_variables(),
            },
            "type_map": self.type_map, "tot_ener_zero": False, "trainable": self.trainable,
            "layer_name": None if for_deepmd else self.layer_name, "use_aparam_as_mask": False, "spin": None,
            **self._extra_dict(),
        }
        return data

    # --- forward ------------------------------------------------------------------------------------------
    def _inputs(self, descriptor: tf.Tensor, fparam: tf.Tensor | None, aparam: tf.Tensor | None) -> tf.Tensor:
        dtype = tf_dtype(self.precision)
        xx = tf.cast(descriptor, dtype)
        shape = tf.shape(descriptor)
        nf, nloc = shape[0], shape[1]
        if self.numb_fparam > 0:
            if fparam is None:
                raise ValueError("this model needs fparam (numb_fparam > 0)")
            fp = (tf.reshape(tf.cast(fparam, tf.float64), [nf, self.numb_fparam]) - self.fparam_avg) \
                * self.fparam_inv_std
            fp = tf.tile(fp[:, None, :], [1, nloc, 1])
            xx = tf.concat([xx, tf.cast(fp, dtype)], axis=-1)
        if self.numb_aparam > 0:
            if aparam is None:
                raise ValueError("this model needs aparam (numb_aparam > 0)")
            ap = (tf.reshape(tf.cast(aparam, tf.float64), [nf, nloc, self.numb_aparam]) - self.aparam_avg) \
                * self.aparam_inv_std
            xx = tf.concat([xx, tf.cast(ap, dtype)], axis=-1)
        return xx

    def net_outputs(self, descriptor: tf.Tensor, atype: tf.Tensor, fparam: tf.Tensor | None = None,
                    aparam: tf.Tensor | None = None, remove_vacuum: Sequence[bool] | None = None) -> tf.Tensor:
        """Per-atom network outputs plus ``bias_atom_e``, zero for excluded types: [nf, nloc, net_out_dim].

        Computed in the fitting's precision (the caller casts the final result to float64, as DeePMD does).
        ``remove_vacuum[t]`` subtracts type t's network output on an all-zero descriptor (``atom_ener``).
        """
        xx = self._inputs(descriptor, fparam, aparam)
        shape = tf.shape(xx)
        nf, nloc = shape[0], shape[1]
        odim = self.net_out_dim
        flat = tf.reshape(xx, [-1, xx.shape[-1]])
        atype_flat = tf.reshape(atype, [-1])
        if remove_vacuum is not None:
            zeros = tf.concat([tf.zeros_like(flat[:, : self.dim_descrpt]), flat[:, self.dim_descrpt:]], axis=-1)
        if self.mixed_types:
            out = self.nets.get()(flat)
            if remove_vacuum is not None:
                out = out - self.nets.get()(zeros)
        else:
            def fn_for(t: int):
                net = self.nets.get(t)
                if remove_vacuum is not None and (t >= len(remove_vacuum) or remove_vacuum[t]):
                    return lambda rows, net=net: net(rows) - net(tf.concat(
                        [tf.zeros_like(rows[:, : self.dim_descrpt]), rows[:, self.dim_descrpt:]], axis=-1))
                return net

            fns = [None if t in self.exclude_types else fn_for(t) for t in range(self.ntypes)]
            out = _stitch_by_type(flat, atype_flat, self.ntypes, fns, odim)
        out = out + tf.gather(tf.cast(self.bias_atom_e, out.dtype), atype_flat)
        if self.exclude_types:
            keep = tf.gather(tf.constant([0.0 if t in self.exclude_types else 1.0 for t in range(self.ntypes)],
                                         out.dtype), atype_flat)
            out = out * keep[:, None]
        return tf.reshape(out, [nf, nloc, odim])

    def __call__(self, descriptor: tf.Tensor, rot_mat: tf.Tensor | None, atype: tf.Tensor,
                 fparam: tf.Tensor | None = None, aparam: tf.Tensor | None = None) -> tf.Tensor:
        raise NotImplementedError
