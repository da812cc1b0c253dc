"""DPA-1: the attention-based descriptor (``se_atten``, alias ``dpa1``) and its stripped, smooth form (``se_atten_v2``).

One neighbour block of ``sel`` slots sorted by distance, whatever the types. Each neighbour gets an embedding
``G_ij`` from its smooth radial term and the type embeddings (``concat``: one net on ``[s_ij, E_j(, E_i)]``;
``strip``: ``G = N_s(s_ij) * (1 + N_t(E_j(, E_i)))``). Gated self-attention layers mix the rows of ``G_i`` (queries,
keys and values L2-normalised, optional angular gate ``r_hat r_hat^T``, residual, LayerNorm); then, as se_e2_a,
``T_i = R_i^T G_i / sel`` and the descriptor is ``T_i^T T_i^<`` (plus the centre type's embedding with
``concat_output_tebd``); ``T_i[1:4]`` is the rotation matrix for dipole/polar fittings.

The numbers are those of DeePMD-kit v3's NumPy reference (``deepmd.dpmodel`` DescrptDPA1 / DescrptSeAttenV2), and
weights are stored in its serialized layout. Where v3 differs from DeePMD-kit v2's TensorFlow code, v3 wins:

* attention logits are scaled by ``(attn * scaling_factor)**-0.5`` unless ``temperature`` is given (DeePMD-kit
  v2: no scaling, i.e. ``temperature: 1.0``); LayerNorm epsilon defaults to 1e-5 (v2: ``ln_eps: 1e-3``);
* padding (and excluded) slots look up the type of the frame's first atom for their type embedding, as the
  reference does. Padding rows enter ``T_i`` with the normalised value ``-davg/dstd``, so with a nonzero ``davg``
  the descriptor depends on which atom comes first (not permutation invariant), unless the type embedding is
  stripped and smooth (se_atten_v2), where the switch zeroes the type part of padding rows. Keep
  ``set_davg_zero`` (se_atten's default) for the other forms.

``attn_mask`` (zero the attention diagonal, a DeePMD-kit v2 option) is computed as v2's TensorFlow code does; v3's
reference refuses such models. The env matrix is built in float64 and cast to ``precision`` (the reference builds it
in ``precision``), as in se_e2_a.

Why one module past 500 lines: se_atten and se_atten_v2 are one model with two options (tebd input mode, smooth
gating); the attention layers, their statistics and the serialized layout must change together with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from mtbench.errors import SpecError
from mtbench.model.descriptor.base import (
    Descriptor,
    DescriptorOutput,
    NeighborSpec,
    gather_pair_mask,
    pair_exclude_table,
    register_descriptor,
)
from mtbench.model.descriptor.common import env_stat_sums_over, stat_variables
from mtbench.model.env_mat import (
    Neighbors,
    env_matrix,
    env_stat_to_davg_dstd,
    normalize_env,
)
from mtbench.model.kernels import batch_matmul, dense_product
from mtbench.model.networks import (
    MLP,
    Dense,
    NetworkCollection,
    canonical_precision,
    tf_dtype,
)
from mtbench.model.type_embedding import TypeEmbedNet

SMOOTH_ATTN_SHIFT = 20.0  # logits of switched-off pairs are pulled to -20 (DeePMD's ``attnw_shift``)
DEFAULT_LN_EPS = 1e-5
ATTENTION_BUCKETS = 4  # groups of atoms by neighbour count, each with its own attention window


class LayerNorm(tf.Module):
    """``(x - mean) / sqrt(var + eps) * w + b`` over the last axis (population variance), DeePMD's layout."""

    def __init__(self, w: np.ndarray, b: np.ndarray, *, eps: float = DEFAULT_LN_EPS, trainable: bool = True,
                 precision: str = "float64", frozen: bool = False, name: str | None = None) -> None:
        """``trainable`` is the serialized flag (``trainable_ln``); ``frozen`` also freezes the variables (a
        non-trainable descriptor)."""
        super().__init__(name=name)
        self.eps = float(eps)
        self.trainable = bool(trainable)
        self.precision = canonical_precision(precision)
        dtype = tf_dtype(self.precision)
        learn = self.trainable and not frozen
        self.w = tf.Variable(np.asarray(w).ravel(), dtype=dtype, trainable=learn, name="w")
        self.b = tf.Variable(np.asarray(b).ravel(), dtype=dtype, trainable=learn, name="b")

    @classmethod
    def init(cls, num_in: int, *, eps: float, trainable: bool, precision: str, frozen: bool = False) -> LayerNorm:
        return cls(np.ones(num_in), np.zeros(num_in), eps=eps, trainable=trainable, precision=precision,
                   frozen=frozen)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        d = x - mean
        var = tf.reduce_mean(d * d, axis=-1, keepdims=True)
        # times rsqrt, not divided by sqrt: the same number to an ulp, and its derivatives need no divisions
        return d * (tf.math.rsqrt(var + self.eps) * self.w) + self.b

    def to_dict(self) -> dict[str, Any]:
        return {"@class": "LayerNorm", "@version": 1, "eps": self.eps, "trainable": self.trainable,
                "precision": self.precision, "@variables": {"w": self.w.numpy(), "b": self.b.numpy()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, frozen: bool = False) -> LayerNorm:
        var = data["@variables"]
        return cls(var["w"], var["b"], eps=data.get("eps", DEFAULT_LN_EPS), trainable=data.get("trainable", True),
                   precision=data.get("precision", "float64"), frozen=frozen)


def _safe_norm(x: tf.Tensor) -> tf.Tensor:
    """Euclidean norm over the last axis, 0 (with zero gradient) for zero vectors."""
    sq = tf.reduce_sum(x * x, axis=-1, keepdims=True)
    nonzero = sq > 0
    return tf.where(nonzero, tf.sqrt(tf.where(nonzero, sq, tf.ones_like(sq))), tf.zeros_like(sq))


class AttentionGates(NamedTuple):
    """What masks and switches do to the attention logits and weights, computed once for all layers.

    ``softmax(logits * scale + shift) * gate``; ``scale`` None means 1. Shapes broadcast to [..., n, n] for the
    ``n <= nnei`` slots computed. ``n_extra`` (smooth only): slots beyond those ``n``, all padding, whose logits
    are exactly ``-SMOOTH_ATTN_SHIFT``; they still count in every softmax denominator (their weights are gated
    to 0), so the softmax adds them analytically instead of materialising them.
    """

    scale: tf.Tensor | None
    shift: tf.Tensor
    gate: tf.Tensor
    n_extra: tf.Tensor | None = None


class GatedAttentionLayer(tf.Module):
    """One attention block over the neighbour rows of every atom, followed by residual + LayerNorm.

    ``x`` [..., nnei, M1]; the masks, switches and angular gate come as :class:`AttentionGates` (see ``gates``).
    """

    def __init__(self, *, in_proj: Dense, out_proj: Dense, layer_norm: LayerNorm, nnei: int, hidden_dim: int,
                 dotr: bool, do_mask: bool, scaling_factor: float, normalize: bool, temperature: float | None,
                 smooth: bool, precision: str, name: str | None = None) -> None:
        super().__init__(name=name)
        self.in_proj, self.out_proj, self.layer_norm = in_proj, out_proj, layer_norm
        self.nnei, self.hidden_dim = int(nnei), int(hidden_dim)
        self.embed_dim = in_proj.num_in
        self.dotr, self.do_mask = bool(dotr), bool(do_mask)
        self.scaling_factor, self.normalize = float(scaling_factor), bool(normalize)
        self.temperature = None if temperature is None else float(temperature)
        self.smooth = bool(smooth)
        self.precision = canonical_precision(precision)
        self.scaling = (self.hidden_dim * self.scaling_factor) ** -0.5 if self.temperature is None \
            else self.temperature

    @property
    def gate_kind(self) -> tuple[bool, bool, bool]:
        """Layers with equal kinds share one :class:`AttentionGates`."""
        return self.smooth, self.dotr, self.do_mask

    def gates(self, mask: tf.Tensor, sw: tf.Tensor, r_hat: tf.Tensor,
              n_extra: tf.Tensor | None = None) -> AttentionGates:
        """From the kept-neighbour ``mask`` [..., n], switch ``sw`` [..., n], unit directions ``r_hat``, and the
        number ``n_extra`` of all-padding slots left out beyond these ``n`` (None: none).

        Non-smooth: masked keys get a finite "minus infinity" (exp underflows to exactly 0, gradients stay finite),
        masked queries a zero row. Smooth: logits ``(l + 20) sw_q sw_k - 20`` and weights times ``sw_q sw_k``.
        Then the optional angular gate ``r_hat r_hat^T`` and the zero diagonal (``attn_mask``).
        """
        dtype = sw.dtype
        query = tf.cast(mask, dtype)[..., :, None]
        if self.smooth:
            pair_sw = sw[..., :, None] * sw[..., None, :]
            scale, shift, gate = pair_sw, SMOOTH_ATTN_SHIFT * (pair_sw - 1.0), pair_sw * query
        else:
            scale = None
            shift = tf.where(mask, tf.zeros_like(sw), tf.fill(tf.shape(sw), tf.constant(-1e30, dtype)))[..., None, :]
            gate = query
        if self.dotr:
            gate = gate * batch_matmul(r_hat, r_hat, transpose_b=True)
        if self.do_mask:
            gate = gate * (1.0 - tf.eye(tf.shape(sw)[-1], dtype=dtype))
        return AttentionGates(scale, shift, gate, tf.cast(n_extra, dtype) if self.smooth and n_extra is not None
                              else None)

    def _projection(self, x: tf.Tensor, part: int) -> tf.Tensor:
        """Columns ``[part * h, (part + 1) * h)`` of ``in_proj(x)`` (q, k or v), from the sliced weights.

        Slicing the [M1, 3h] weight instead of the [..., n, 3h] product keeps the big strided-slice gradients
        (a zero-filled copy of the whole product per slice and derivative order) out of the graph.
        """
        h = self.hidden_dim
        w = self.in_proj.w[:, part * h:(part + 1) * h]
        y = dense_product(x, w)
        if self.in_proj.b is not None:
            y = y + self.in_proj.b[part * h:(part + 1) * h]
        return y

    def __call__(self, x: tf.Tensor, gates: AttentionGates) -> tf.Tensor:
        if self.in_proj.activation_function.lower() not in ("none", "linear") or self.in_proj.idt is not None \
                or self.in_proj.resnet:
            qkv = self.in_proj(x)  # a layout DeePMD never writes; keep the general layer
            h = self.hidden_dim
            q, k, v = qkv[..., :h], qkv[..., h:2 * h], qkv[..., 2 * h:3 * h]
        else:
            q, k, v = (self._projection(x, part) for part in range(3))
        if self.normalize:
            q, k, v = (t * tf.math.rsqrt(tf.reduce_sum(t * t, axis=-1, keepdims=True)) for t in (q, k, v))
        logits = batch_matmul(q * self.scaling, k, transpose_b=True)  # [..., n(query), n(key)]
        if gates.scale is not None:
            logits = logits * gates.scale
        logits = logits + gates.shift
        if gates.n_extra is None:
            weights = tf.nn.softmax(logits, axis=-1)
        else:  # the left-out padding keys, logit -SMOOTH_ATTN_SHIFT each, in max and denominator
            top = tf.reduce_max(logits, axis=-1, keepdims=True)
            top = tf.stop_gradient(tf.where(gates.n_extra > 0, tf.maximum(top, -SMOOTH_ATTN_SHIFT), top))
            e = tf.exp(logits - top)
            denom = tf.reduce_sum(e, axis=-1, keepdims=True) + gates.n_extra * tf.exp(-SMOOTH_ATTN_SHIFT - top)
            weights = e / denom
        weights = weights * gates.gate
        out = self.out_proj(batch_matmul(weights, v))
        return self.layer_norm(x + out)

    def padding_rows(self, x: tf.Tensor) -> tf.Tensor:
        """The layer on rows of padding slots: their attention weights are all zero, so ``LN(x + out_proj(0))``."""
        zero = tf.zeros([1, self.hidden_dim], dtype=x.dtype)
        return self.layer_norm(x + self.out_proj(zero)[0])

    @classmethod
    def init(cls, *, nnei: int, embed_dim: int, hidden_dim: int, dotr: bool, do_mask: bool, scaling_factor: float,
             normalize: bool, temperature: float | None, smooth: bool, ln_eps: float, trainable_ln: bool,
             precision: str, trainable: bool, rng: np.random.Generator) -> GatedAttentionLayer:
        def dense(n_in: int, n_out: int) -> Dense:
            return Dense.init(n_in, n_out, rng=rng, activation_function=None, resnet=False, use_timestep=False,
                              precision=precision, trainable=trainable)

        return cls(in_proj=dense(embed_dim, 3 * hidden_dim), out_proj=dense(hidden_dim, embed_dim),
                   layer_norm=LayerNorm.init(embed_dim, eps=ln_eps, trainable=trainable_ln, precision=precision,
                                             frozen=not trainable),
                   nnei=nnei, hidden_dim=hidden_dim, dotr=dotr, do_mask=do_mask, scaling_factor=scaling_factor,
                   normalize=normalize, temperature=temperature, smooth=smooth, precision=precision)

    def _common(self) -> dict[str, Any]:
        return {"nnei": self.nnei, "embed_dim": self.embed_dim, "hidden_dim": self.hidden_dim, "dotr": self.dotr,
                "do_mask": self.do_mask, "scaling_factor": self.scaling_factor, "normalize": self.normalize,
                "temperature": self.temperature}

    def to_dict(self) -> dict[str, Any]:
        """DeePMD's ``NeighborGatedAttentionLayer`` dict (attention + LayerNorm)."""
        return {**self._common(), "trainable_ln": self.layer_norm.trainable, "ln_eps": self.layer_norm.eps,
                "precision": self.precision,
                "attention_layer": {**self._common(), "num_heads": 1, "bias": self.in_proj.b is not None,
                                    "smooth": self.smooth, "precision": self.precision,
                                    "in_proj": self.in_proj.to_dict(), "out_proj": self.out_proj.to_dict()},
                "attn_layer_norm": self.layer_norm.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, trainable: bool | None = None) -> GatedAttentionLayer:
        att = data["attention_layer"]
        if int(att.get("num_heads", 1)) != 1:
            raise ValueError("se_atten attention layers have one head; got num_heads="
                             f"{att['num_heads']}")
        return cls(in_proj=Dense.from_dict(att["in_proj"], trainable=trainable),
                   out_proj=Dense.from_dict(att["out_proj"], trainable=trainable),
                   layer_norm=LayerNorm.from_dict(data["attn_layer_norm"], frozen=trainable is False),
                   nnei=att["nnei"],
                   hidden_dim=att["hidden_dim"], dotr=att.get("dotr", False), do_mask=att.get("do_mask", False),
                   scaling_factor=att.get("scaling_factor", 1.0), normalize=att.get("normalize", True),
                   temperature=att.get("temperature"), smooth=att.get("smooth", True),
                   precision=att.get("precision", "float64"))


def _sel_total(sel: Any, key: str) -> int:
    if isinstance(sel, (int, np.integer)) and not isinstance(sel, bool):
        return int(sel)
    if isinstance(sel, (list, tuple)) and sel and all(isinstance(s, (int, np.integer)) for s in sel):
        return int(sum(sel))
    raise SpecError(key, f"expected an int or a list of ints (summed), got {sel!r}; resolve 'auto' before building")


@register_descriptor("se_atten")
class DescrptSeAtten(Descriptor):
    """se_atten / DPA-1; ``se_atten_v2`` is the subclass with strip mode and the smooth switch fixed on."""

    serial_type = "dpa1"
    default_set_davg_zero = True

    def __init__(self, *, rcut: float, rcut_smth: float, sel: int, ntypes: int, neuron: Sequence[int],
                 axis_neuron: int, tebd_dim: int, tebd_input_mode: str, embeddings: NetworkCollection,
                 embeddings_strip: NetworkCollection | None, attention: Sequence[GatedAttentionLayer],
                 type_embedding: TypeEmbedNet, davg: np.ndarray, dstd: np.ndarray, attn: int, attn_layer: int,
                 attn_dotr: bool = True, attn_mask: bool = False, set_davg_zero: bool = True,
                 smooth_type_embedding: bool = False, type_one_side: bool = False, concat_output_tebd: bool = True,
                 resnet_dt: bool = False, trainable: bool = True, trainable_ln: bool = True,
                 ln_eps: float = DEFAULT_LN_EPS, scaling_factor: float = 1.0, normalize: bool = True,
                 temperature: float | None = None, exclude_types: Sequence[Sequence[int]] = (),
                 env_protection: float = 0.0, activation_function: str = "tanh", use_tebd_bias: bool = False,
                 precision: str = "float64", type_map: Sequence[str] | None = None, skip_padding: bool = True,
                 bucket_atoms: bool = True, name: str | None = None) -> None:
        """``skip_padding``: attention over the slots some atom fills only (:meth:`_attend_real_slots`); False
        forces the dense path over all ``sel`` slots (same numbers to rounding; for A/B checks and timing).
        ``bucket_atoms``: with ``skip_padding``, one window per group of atoms (:meth:`_attend_buckets`)."""
        super().__init__(name=name)
        self.skip_padding, self.bucket_atoms = bool(skip_padding), bool(bucket_atoms)
        if tebd_input_mode not in ("concat", "strip"):
            raise ValueError(f"tebd_input_mode must be 'concat' or 'strip', got {tebd_input_mode!r}")
        if (tebd_input_mode == "strip") != (embeddings_strip is not None):
            raise ValueError("strip mode needs embeddings_strip, concat mode must not have it")
        self.rcut, self.rcut_smth = float(rcut), float(rcut_smth)
        self.nnei = int(sel)
        self.ntypes = int(ntypes)
        self.neuron = [int(n) for n in neuron]
        self.axis_neuron = int(axis_neuron)
        self.tebd_dim = int(tebd_dim)
        self.tebd_input_mode = tebd_input_mode
        self.embeddings, self.embeddings_strip = embeddings, embeddings_strip
        self.attention = list(attention)
        self.type_embedding = type_embedding
        self.attn, self.attn_layer = int(attn), int(attn_layer)
        self.attn_dotr, self.attn_mask = bool(attn_dotr), bool(attn_mask)
        self.set_davg_zero = bool(set_davg_zero)
        self.smooth = bool(smooth_type_embedding)
        self.type_one_side = bool(type_one_side)
        self.concat_output_tebd = bool(concat_output_tebd)
        self.resnet_dt, self.trainable, self.trainable_ln = bool(resnet_dt), bool(trainable), bool(trainable_ln)
        self.ln_eps = float(ln_eps)
        self.scaling_factor, self.normalize = float(scaling_factor), bool(normalize)
        self.temperature = None if temperature is None else float(temperature)
        self.exclude_types = [list(map(int, p)) for p in exclude_types]
        self.env_protection = float(env_protection)
        self.activation_function = activation_function
        self.use_tebd_bias = bool(use_tebd_bias)
        self.precision = canonical_precision(precision)
        self.type_map = list(type_map) if type_map is not None else None
        if len(self.attention) != self.attn_layer:
            raise ValueError(f"attn_layer is {self.attn_layer} but {len(self.attention)} attention layers given")
        self.davg, self.dstd = stat_variables(davg, dstd, self.ntypes, self.nnei, 4)
        self._excl_table = pair_exclude_table(self.ntypes, self.exclude_types)

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def _mode_from_config(cls, config: dict[str, Any], key: str) -> tuple[str, bool]:
        """(tebd_input_mode, smooth) from v3 keys, v2's ``stripped_type_embedding`` taking precedence."""
        mode = config.get("tebd_input_mode", "concat")
        stripped = config.get("stripped_type_embedding")
        if stripped is not None:
            mode = "strip" if stripped else "concat"
        if mode not in ("concat", "strip"):
            raise SpecError(f"{key}.tebd_input_mode", f"expected 'concat' or 'strip', got {mode!r}")
        smooth = config.get("smooth_type_embedding", config.get("smooth_type_embdding", False))
        return mode, bool(smooth)

    @classmethod
    def build(cls, config: dict[str, Any], type_map: Sequence[str], rng: np.random.Generator) -> DescrptSeAtten:
        """Fresh descriptor from the spec section (DeePMD-kit input keys; v3 argcheck defaults)."""
        key = "model.descriptor"
        ntypes = len(type_map)
        nnei = _sel_total(config.get("sel", "auto"), f"{key}.sel")
        mode, smooth = cls._mode_from_config(config, key)
        if config.get("use_econf_tebd", False):
            raise SpecError(f"{key}.use_econf_tebd", "electronic-configuration type embedding is not supported")
        if config.get("lmax") not in (None, 1):
            raise SpecError(f"{key}.lmax", f"only lmax 1 (the DPA-1 env matrix) is supported, got {config['lmax']}")
        precision = canonical_precision(config.get("precision", "default"))
        activation = config.get("activation_function", "tanh")
        resnet_dt = bool(config.get("resnet_dt", False))
        trainable = bool(config.get("trainable", True))
        neuron = [int(n) for n in config.get("neuron", [10, 20, 40])]
        tebd_dim = int(config.get("tebd_dim", 8))
        type_one_side = bool(config.get("type_one_side", False))
        attn, attn_layer = int(config.get("attn", 128)), int(config.get("attn_layer", 2))
        ln_eps = config.get("ln_eps")
        ln_eps = DEFAULT_LN_EPS if ln_eps is None else float(ln_eps)
        trainable_ln = bool(config.get("trainable_ln", True))
        use_tebd_bias = bool(config.get("use_tebd_bias", False))
        tebd_in = tebd_dim if type_one_side else 2 * tebd_dim

        def embedding(in_dim: int) -> NetworkCollection:
            net = MLP.embedding(in_dim, neuron, rng=rng, activation_function=activation, resnet_dt=resnet_dt,
                                precision=precision, trainable=trainable)
            return NetworkCollection(0, ntypes, "embedding_network", [net])

        embeddings = embedding(1 + tebd_in if mode == "concat" else 1)
        embeddings_strip = embedding(tebd_in) if mode == "strip" else None
        attention = [GatedAttentionLayer.init(nnei=nnei, embed_dim=neuron[-1], hidden_dim=attn,
                                              dotr=bool(config.get("attn_dotr", True)),
                                              do_mask=bool(config.get("attn_mask", False)),
                                              scaling_factor=float(config.get("scaling_factor", 1.0)),
                                              normalize=bool(config.get("normalize", True)),
                                              temperature=config.get("temperature"), smooth=smooth, ln_eps=ln_eps,
                                              trainable_ln=trainable_ln, precision=precision, trainable=trainable,
                                              rng=rng)
                     for _ in range(attn_layer)]
        type_embedding = TypeEmbedNet.init(ntypes, [tebd_dim], rng=rng, activation_function="Linear",
                                           use_tebd_bias=use_tebd_bias, precision=precision, trainable=trainable,
                                           padding=True, type_map=type_map)
        return cls(rcut=config.get("rcut", 6.0), rcut_smth=config.get("rcut_smth", 0.5), sel=nnei, ntypes=ntypes,
                   neuron=neuron, axis_neuron=config.get("axis_neuron", config.get("n_axis_neuron", 4)),
                   tebd_dim=tebd_dim, tebd_input_mode=mode, embeddings=embeddings,
                   embeddings_strip=embeddings_strip, attention=attention, type_embedding=type_embedding,
                   davg=np.zeros((ntypes, nnei, 4)), dstd=np.ones((ntypes, nnei, 4)), attn=attn,
                   attn_layer=attn_layer, attn_dotr=config.get("attn_dotr", True),
                   attn_mask=config.get("attn_mask", False),
                   set_davg_zero=config.get("set_davg_zero", cls.default_set_davg_zero),
                   smooth_type_embedding=smooth, type_one_side=type_one_side,
                   concat_output_tebd=config.get("concat_output_tebd", True), resnet_dt=resnet_dt,
                   trainable=trainable, trainable_ln=trainable_ln, ln_eps=ln_eps,
                   scaling_factor=config.get("scaling_factor", 1.0), normalize=config.get("normalize", True),
                   temperature=config.get("temperature"), exclude_types=config.get("exclude_types", []),
                   env_protection=config.get("env_protection", 0.0), activation_function=activation,
                   use_tebd_bias=use_tebd_bias, precision=precision, type_map=type_map)

    def to_dict(self) -> dict[str, Any]:
        np_dtype = np.dtype(self.precision)
        data = {
            "@class": "Descriptor", "type": self.serial_type, "@version": 2,
            "rcut": self.rcut, "rcut_smth": self.rcut_smth, "sel": [self.nnei], "ntypes": self.ntypes,
            "neuron": list(self.neuron), "axis_neuron": self.axis_neuron, "tebd_dim": self.tebd_dim,
            "tebd_input_mode": self.tebd_input_mode,
            "set_davg_zero": self.set_davg_zero, "attn": self.attn, "attn_layer": self.attn_layer,
            "attn_dotr": self.attn_dotr, "attn_mask": self.attn_mask,
            "activation_function": self.activation_function, "resnet_dt": self.resnet_dt,
            "scaling_factor": self.scaling_factor, "normalize": self.normalize, "temperature": self.temperature,
            "trainable_ln": self.trainable_ln, "ln_eps": self.ln_eps,
            "smooth_type_embedding": self.smooth,
            "type_one_side": self.type_one_side, "concat_output_tebd": self.concat_output_tebd,
            "use_econf_tebd": False, "use_tebd_bias": self.use_tebd_bias, "type_map": self.type_map,
            "precision": self.precision,
            "embeddings": self.embeddings.to_dict(),
            "attention_layers": self._attention_dict(),
            "env_mat": {"rcut": self.rcut, "rcut_smth": self.rcut_smth, "protection": self.env_protection,
                        "use_exp_switch": False},
            "type_embedding": self.type_embedding.to_dict(),
            "exclude_types": [list(p) for p in self.exclude_types], "env_protection": self.env_protection,
            "@variables": {"davg": self.davg.numpy().astype(np_dtype), "dstd": self.dstd.numpy().astype(np_dtype)},
            "trainable": self.trainable, "spin": None,
        }
        if self.embeddings_strip is not None:
            data["embeddings_strip"] = self.embeddings_strip.to_dict()
        return data

    def _attention_dict(self) -> dict[str, Any]:
        return {"@class": "NeighborGatedAttention", "@version": 1, "layer_num": self.attn_layer,
                "nnei": self.nnei, "embed_dim": self.neuron[-1], "hidden_dim": self.attn, "dotr": self.attn_dotr,
                "do_mask": self.attn_mask, "scaling_factor": self.scaling_factor, "normalize": self.normalize,
                "temperature": self.temperature, "trainable_ln": self.trainable_ln, "ln_eps": self.ln_eps,
                "precision": self.precision, "attention_layers": [layer.to_dict() for layer in self.attention]}

    @classmethod
    def _mode_from_dict(cls, data: dict[str, Any]) -> tuple[str, bool]:
        mode = data.get("tebd_input_mode", "concat")
        if data.get("stripped_type_embedding") is not None:
            mode = "strip" if data["stripped_type_embedding"] else "concat"
        return mode, bool(data.get("smooth_type_embedding", True))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DescrptSeAtten:
        if data.get("compress"):
            raise ValueError("compressed se_atten models are not supported; export the uncompressed model")
        if data.get("spin"):
            raise ValueError("spin models are not supported")
        if data.get("lmax", 1) != 1:
            raise ValueError(f"se_atten with lmax {data['lmax']} is not supported (only lmax 1)")
        mode, smooth = cls._mode_from_dict(data)
        trainable = bool(data.get("trainable", True))
        var = data["@variables"]
        att = data["attention_layers"]
        layers = [GatedAttentionLayer.from_dict(ld, trainable=trainable) for ld in att["attention_layers"]]
        for layer in layers:
            layer.smooth = smooth  # the descriptor's flag rules, as in the reference
        ln_eps = data.get("ln_eps")
        return cls(rcut=data["rcut"], rcut_smth=data["rcut_smth"], sel=_sel_total(data["sel"], "descriptor.sel"),
                   ntypes=data["ntypes"], neuron=data["neuron"], axis_neuron=data["axis_neuron"],
                   tebd_dim=data["tebd_dim"], tebd_input_mode=mode,
                   embeddings=NetworkCollection.from_dict(data["embeddings"], trainable=trainable),
                   embeddings_strip=(NetworkCollection.from_dict(data["embeddings_strip"], trainable=trainable)
                                     if mode == "strip" else None),
                   attention=layers, type_embedding=TypeEmbedNet.from_dict(data["type_embedding"]),
                   davg=var["davg"], dstd=var["dstd"], attn=data["attn"], attn_layer=data["attn_layer"],
                   attn_dotr=data.get("attn_dotr", True), attn_mask=data.get("attn_mask", False),
                   set_davg_zero=data.get("set_davg_zero", False), smooth_type_embedding=smooth,
                   type_one_side=data.get("type_one_side", False),
                   concat_output_tebd=data.get("concat_output_tebd", True), resnet_dt=data.get("resnet_dt", False),
                   trainable=trainable, trainable_ln=data.get("trainable_ln", True),
                   ln_eps=DEFAULT_LN_EPS if ln_eps is None else ln_eps,
                   scaling_factor=data.get("scaling_factor", 1.0), normalize=data.get("normalize", True),
                   temperature=data.get("temperature"), exclude_types=data.get("exclude_types", []),
                   env_protection=data.get("env_protection", 0.0),
                   activation_function=data.get("activation_function", "tanh"),
                   use_tebd_bias=data.get("use_tebd_bias", False), precision=data.get("precision", "float64"),
                   type_map=data.get("type_map"))

    def config(self) -> dict[str, Any]:
        """The spec section (DeePMD input keys) that rebuilds this descriptor's architecture."""
        data = self.to_dict()
        drop = {"embeddings", "embeddings_strip", "attention_layers", "type_embedding", "env_mat", "ntypes",
                "spin", "type_map", "use_econf_tebd"}
        out = {k: v for k, v in data.items() if not k.startswith("@") and k not in drop}
        out["type"] = self.type_name
        out["sel"] = self.nnei
        return out

    # --- interface ----------------------------------------------------------------------------------------
    def neighbor_specs(self) -> list[NeighborSpec]:
        return [NeighborSpec(self.rcut, (self.nnei,), True)]

    @property
    def mixed_types(self) -> bool:
        return True

    @property
    def dim_out(self) -> int:
        return self.neuron[-1] * self.axis_neuron + (self.tebd_dim if self.concat_output_tebd else 0)

    @property
    def dim_emb(self) -> int:
        return self.neuron[-1]

    def _pair_embedding(self, ss: tf.Tensor, nei_t: tf.Tensor, atype: tf.Tensor, sw: tf.Tensor,
                        tebd: tf.Tensor) -> tf.Tensor:
        """``G_ij`` [nf, nloc, nnei, M1] from the normalised radial column ``ss`` and the type embeddings."""
        if self.tebd_input_mode == "concat":
            parts = [ss, tf.gather(tebd, nei_t)]
            if not self.type_one_side:
                centre = tf.gather(tebd, atype)[:, :, None, :]
                parts.append(tf.broadcast_to(centre, tf.concat([tf.shape(nei_t), [self.tebd_dim]], axis=0)))
            return self.embeddings.get()(tf.concat(parts, axis=-1))
        gg_s = self.embeddings.get()(ss)
        net_t = self.embeddings_strip.get()
        if self.type_one_side:
            gg_t = tf.gather(net_t(tebd), nei_t)
        else:
            ntp = self.ntypes + 1
            # row c * ntp + n holds [E_n, E_c]: neighbour first, then centre
            pair_in = tf.concat([tf.tile(tebd[None, :, :], [ntp, 1, 1]), tf.tile(tebd[:, None, :], [1, ntp, 1])],
                                axis=-1)
            table = net_t(tf.reshape(pair_in, [ntp * ntp, 2 * self.tebd_dim]))
            gg_t = tf.gather(table, atype[:, :, None] * ntp + nei_t)
        if self.smooth:
            gg_t = gg_t * sw[..., None]
        return gg_s * gg_t + gg_s

    def _attend(self, gg: tf.Tensor, rr: tf.Tensor, sw: tf.Tensor, mask: tf.Tensor,
                n_extra: tf.Tensor | None = None) -> tf.Tensor:
        """The attention layers on ``gg`` [nf, nloc, n, M1] (``n_extra`` padding slots left out, see gates)."""
        ang = rr[..., 1:4]
        r_hat = ang / tf.maximum(_safe_norm(ang), tf.constant(1e-12, rr.dtype))
        gates: dict[tuple[bool, bool, bool], AttentionGates] = {}
        for layer in self.attention:
            if layer.gate_kind not in gates:
                gates[layer.gate_kind] = layer.gates(mask, sw, r_hat, n_extra)
            gg = layer(gg, gates[layer.gate_kind])
        return gg

    def _attend_real_slots(self, real: tf.Tensor, rr: tf.Tensor, sw: tf.Tensor, mask: tf.Tensor, nei_t: tf.Tensor,
                           atype: tf.Tensor, tebd: tf.Tensor) -> tf.Tensor:
        """``sum_j G_j^T R_j`` [nf, nloc, M1, 4] with attention over the first ``n`` slots only.

        ``n`` is the last slot any atom of the batch fills (``real``: the neighbour list's mask, exclusions not
        applied); the slots beyond are padding for every atom (water at 6 A fills ~90 of 120). Attention cost
        grows with ``n^2``. Padding rows never mix with others: as queries their weights are zero (``G <-
        LN(G + out_proj(0))``, :meth:`GatedAttentionLayer.padding_rows`); as keys they get weight 0 (non-smooth:
        exp underflows to exactly 0; smooth: gated to 0, but they stay in the softmax denominator, which
        ``AttentionGates.n_extra`` adds back). So those rows follow their own cheap chain, and the result is the
        dense one to rounding (their rows of R are ``-davg/dstd``: zero with ``set_davg_zero``).
        """
        n = tf.maximum(tf.reduce_max(self._last_filled_slot(real)), 1)
        return self._attend_window(n, rr, sw, mask, nei_t, atype, tebd)

    def _last_filled_slot(self, real: tf.Tensor) -> tf.Tensor:
        """Per atom, the number of the last slot ``real`` fills (1-based; 0 for an atom without neighbours)."""
        slot = tf.range(1, self.nnei + 1, dtype=tf.int32)
        return tf.reduce_max(tf.where(real, slot, tf.zeros_like(slot)), axis=-1)

    def _attend_buckets(self, real: tf.Tensor, rr: tf.Tensor, sw: tf.Tensor, mask: tf.Tensor, nei_t: tf.Tensor,
                        atype: tf.Tensor, tebd: tf.Tensor) -> tf.Tensor:
        """:meth:`_attend_real_slots` per group of atoms with similar neighbour counts.

        The atoms of the batch are sorted by the last slot each fills and cut into ``ATTENTION_BUCKETS``
        groups of equal size; each group's attention stops at its own last slot. Rows are independent per atom,
        so this is the same sum as one window for all (to rounding); the attention work falls from
        ``N max(n)^2`` to ``sum_g N_g max_g(n)^2`` (water: ~0.8).
        """
        last = tf.reshape(self._last_filled_slot(real), [-1])  # [N]
        total = tf.size(last)
        order = tf.argsort(last, stable=True)
        flat = [tf.reshape(t, tf.concat([[1, total], tf.shape(t)[2:]], axis=0)) for t in (rr, sw, mask, nei_t)]
        flat_atype = tf.reshape(atype, [1, total])
        parts = []
        for g in range(ATTENTION_BUCKETS):
            ids = order[(g * total) // ATTENTION_BUCKETS:((g + 1) * total) // ATTENTION_BUCKETS]
            n = tf.reduce_max(tf.concat([tf.gather(last, ids), [1]], axis=0))  # >= 1, also for an empty group
            rr_g, sw_g, mask_g, nei_g = (tf.gather(t, ids, axis=1) for t in flat)
            parts.append(self._attend_window(n, rr_g, sw_g, mask_g, nei_g, tf.gather(flat_atype, ids, axis=1),
                                             tebd))
        gr = tf.gather(tf.concat(parts, axis=1), tf.math.invert_permutation(order), axis=1)
        return tf.reshape(gr, tf.concat([tf.shape(atype), tf.shape(gr)[2:]], axis=0))

    def _attend_window(self, n: tf.Tensor, rr: tf.Tensor, sw: tf.Tensor, mask: tf.Tensor, nei_t: tf.Tensor,
                       atype: tf.Tensor, tebd: tf.Tensor) -> tf.Tensor:
        """``sum_j G_j^T R_j`` with attention over slots ``[0, n)``, padding rows beyond (see above)."""
        rr_a, rr_b = rr[:, :, :n], rr[:, :, n:]
        gg = self._pair_embedding(rr_a[..., :1], nei_t[:, :, :n], atype, sw[:, :, :n], tebd)
        gg = self._attend(gg, rr_a, sw[:, :, :n], mask[:, :, :n], n_extra=self.nnei - n)
        gg_pad = self._pair_embedding(rr_b[..., :1], nei_t[:, :, n:], atype, sw[:, :, n:], tebd)
        for layer in self.attention:
            gg_pad = layer.padding_rows(gg_pad)
        return batch_matmul(gg, rr_a, transpose_a=True) + batch_matmul(gg_pad, rr_b, transpose_a=True)

    def __call__(self, neighbors: dict[NeighborSpec, Neighbors], atype: tf.Tensor) -> DescriptorOutput:
        nb = neighbors[self.neighbor_specs()[0]]
        dtype = tf_dtype(self.precision)
        em, sw = env_matrix(nb, self.rcut, self.rcut_smth, protection=self.env_protection)
        rr = normalize_env(em, atype, self.davg, self.dstd)  # padding rows: -davg/dstd, as in the reference
        mask = nb.mask
        if self.exclude_types:
            keep = gather_pair_mask(self._excl_table, atype, nb.nei_type) > 0
            rr = rr * tf.cast(keep[..., None], rr.dtype)
            mask = tf.logical_and(mask, keep)
        sw = sw * tf.cast(mask, sw.dtype)
        rr, sw = tf.cast(rr, dtype), tf.cast(sw, dtype)
        # masked slots take the type of the frame's first atom (the reference gathers extended atom 0 there)
        first = tf.broadcast_to(atype[:, :1, None], tf.shape(nb.nei_type))
        nei_t = tf.where(mask, tf.cast(nb.nei_type, atype.dtype), first)
        tebd = self.type_embedding()
        if self.attention and self.skip_padding:
            attend = self._attend_buckets if self.bucket_atoms else self._attend_real_slots
            gr = attend(nb.mask, rr, sw, mask, nei_t, atype, tebd)
        else:
            gg = self._pair_embedding(rr[..., :1], nei_t, atype, sw, tebd)
            if self.attention:
                gg = self._attend(gg, rr, sw, mask)
            gr = batch_matmul(gg, rr, transpose_a=True)
        gr = gr / tf.cast(self.nnei, dtype)  # [nf, nloc, M1, 4]
        grrg = batch_matmul(gr, gr[:, :, : self.axis_neuron, :], transpose_b=True)  # [nf, nloc, M1, axis]
        shape = tf.shape(atype)
        desc = tf.reshape(grrg, [shape[0], shape[1], self.neuron[-1] * self.axis_neuron])
        if self.concat_output_tebd:
            desc = tf.concat([desc, tf.gather(tebd, atype)], axis=-1)
        return DescriptorOutput(tf.cast(desc, tf.float64), tf.cast(gr[..., 1:], tf.float64))

    def compute_input_stats(self, samples: Sequence[tuple[dict[NeighborSpec, Neighbors], tf.Tensor]]) -> None:
        """se_e2_a's rules per centre type; with ``set_davg_zero`` only ``dstd`` changes (as in the reference)."""
        sums = env_stat_sums_over(self, samples)
        davg, dstd = env_stat_to_davg_dstd(sums, self.nnei, 4, set_davg_zero=False, rcut=self.rcut)
        if not self.set_davg_zero:
            self.davg.assign(davg)
        self.dstd.assign(dstd)


@register_descriptor("se_atten_v2")
class DescrptSeAttenV2(DescrptSeAtten):
    """se_atten with ``tebd_input_mode='strip'`` and ``smooth_type_embedding`` fixed on (default set_davg_zero off)."""

    serial_type = "se_atten_v2"
    default_set_davg_zero = False

    @classmethod
    def _mode_from_config(cls, config: dict[str, Any], key: str) -> tuple[str, bool]:
        if config.get("stripped_type_embedding") is False or config.get("tebd_input_mode", "strip") != "strip":
            raise SpecError(f"{key}.tebd_input_mode", "se_atten_v2 always strips the type embedding; use se_atten "
                            "for 'concat'")
        if config.get("smooth_type_embedding", True) is False:
            raise SpecError(f"{key}.smooth_type_embedding", "se_atten_v2 is always smooth; use se_atten "
                            "with tebd_input_mode 'strip' for the non-smooth form")
        return "strip", True

    @classmethod
    def _mode_from_dict(cls, data: dict[str, Any]) -> tuple[str, bool]:
        return "strip", True

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        del data["tebd_input_mode"], data["smooth_type_embedding"]  # implied by the type in the reference layout
        return data
