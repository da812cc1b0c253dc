"""Frozen models as TensorFlow SavedModels that plain ``tf.saved_model.load`` can evaluate, mtbench or not.

One SavedModel holds the descriptor, one or more heads, the type map and every statistic (as variables) plus
``assets/mtbench_model.h5`` (mtbench's own model file: exact weights and the spec, for mtbench to reload).

Signatures, per head ``<task>``:

* ``<task>``: inputs ``coord`` [nf, N, 3] float64, ``box`` [nf, 3, 3] float64 (all zeros for a non-periodic frame),
  ``atype`` [nf, N] int32 (indices into the type map), plus ``fparam`` [nf, numb_fparam] and ``aparam``
  [nf, N, numb_aparam] (float64) when the head takes them. The neighbour list is built inside the graph with
  DeePMD-kit's rules (wrap into the cell, periodic images, ``sel`` nearest per type), O(N^2) per frame: fine for
  the few hundred atoms of a training frame, use the ``_nlist`` signature for large systems.
* ``<task>_nlist``: the same plus precomputed neighbour lists ``idx_<k>`` [nf, N, nnei] int32 (-1 = empty slot)
  and ``shift_<k>`` [nf, N, nnei, 3] int32 (integer image vectors ``n``, ``r_ij = x_j + n @ box - x_i``), one pair
  per entry of the metadata's ``neighbor_lists``.
* ``metadata``: no inputs, output ``json``: type map, heads (kind, outputs, signature names, fparam/aparam sizes),
  the neighbour lists and mtbench's version.

Outputs: energy heads ``energy`` [nf], ``atom_energy`` [nf, N], ``force`` [nf, N, 3], ``virial`` [nf, 9];
dipole/polarizability heads ``atomic`` [nf, N, 3|9] (zero for atoms of types the head does not fit) and
``global`` [nf, 3|9].
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from mtbench import __version__
from mtbench.model.descriptor import NeighborSpec
from mtbench.model.multitask import MultiTaskModel
from mtbench.model.kernels import portable_graphs

FORMAT = "mtbench-savedmodel"
ENERGY_OUTPUTS = ("energy", "atom_energy", "force", "virial")
TENSOR_OUTPUTS = ("atomic", "global")
NLIST_SUFFIX = "_nlist"


# ------------------------------------------------------------------------------------- neighbour lists


def graph_neighbor_list(coord: tf.Tensor, box: tf.Tensor, atype: tf.Tensor, spec: NeighborSpec,
                        ntypes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """DeePMD-kit's neighbour list of a batch of frames, in TensorFlow ops only (``idx``, ``shift``; int32).

    The same rules as :func:`mtbench.data.neighbor.build_neighbor_list`: coordinates wrapped into the cell,
    periodic images up to ``ceil(rcut / face distance)`` cells away (a frame whose box is all zeros has none), the
    ``sum(sel)`` nearest candidates within ``rcut`` kept in distance order (ties: image rank, then atom), then,
    unless ``mixed_types``, the first ``sel[t]`` of each type ``t`` in its block. ``shift`` refers to the
    coordinates as given (unwrapped).
    """
    f64 = tf.float64
    coord = tf.convert_to_tensor(coord, f64)
    box = tf.convert_to_tensor(box, f64)
    atype = tf.convert_to_tensor(atype, tf.int32)
    nf, natoms = tf.shape(coord)[0], tf.shape(coord)[1]
    nnei = spec.nnei

    periodic = tf.reduce_any(tf.not_equal(box, 0.0), axis=[1, 2])  # [nf]
    safe_box = tf.where(periodic[:, None, None], box, tf.eye(3, batch_shape=[nf], dtype=f64))
    frac = tf.matmul(coord, tf.linalg.inv(safe_box))
    wrapped_frac = tf.math.floormod(frac, tf.constant(1.0, f64))
    wrapped = tf.where(periodic[:, None, None], tf.matmul(wrapped_frac, safe_box), coord)
    offset = tf.where(periodic[:, None, None], tf.round(wrapped_frac - frac), tf.zeros_like(frac))  # [nf, N, 3]

    volume = tf.abs(tf.linalg.det(safe_box))
    rows = [safe_box[:, k] for k in range(3)]
    faces = tf.stack([volume / tf.norm(tf.linalg.cross(rows[(k + 1) % 3], rows[(k + 2) % 3]), axis=-1)
                      for k in range(3)], axis=-1)  # [nf, 3]
    nbuff = tf.where(periodic[:, None], tf.math.ceil(spec.rcut / faces), tf.zeros_like(faces))
    nbuff = tf.cast(tf.reduce_max(nbuff, axis=0), tf.int32)  # [3], the widest frame's
    axes = [tf.range(-nbuff[k], nbuff[k] + 1) for k in range(3)]
    grid = tf.reshape(tf.stack(tf.meshgrid(*axes, indexing="ij"), axis=-1), [-1, 3])
    grid = tf.cast(grid, f64)
    images = tf.gather(grid, tf.argsort(tf.norm(grid, axis=-1), stable=True))  # [S, 3], zero image first
    nimg = tf.shape(images)[0]

    image_vec = tf.einsum("sd,fde->fse", images, safe_box)  # [nf, S, 3]
    ext = tf.reshape(wrapped[:, None, :, :] + image_vec[:, :, None, :], [nf, -1, 3])  # candidate c = s * N + j
    diff = ext[:, None, :, :] - wrapped[:, :, None, :]  # [nf, N, C, 3]
    dist = tf.norm(diff, axis=-1)
    cand = tf.range(nimg * natoms)
    cand_img, cand_atom = cand // natoms, cand % natoms
    not_self = tf.not_equal(cand[None, None, :], tf.range(natoms)[None, :, None])  # zero image of atom i is c = i
    real_image = tf.logical_or(periodic[:, None, None], tf.equal(cand_img, 0)[None, None, :])
    valid = (dist <= spec.rcut) & not_self & real_image
    key = tf.where(valid, -dist, tf.constant(-float("inf"), f64))
    kk = tf.minimum(nnei, tf.shape(key)[-1])
    top, pos = tf.math.top_k(key, k=kk)  # nearest first; equal keys keep the lower candidate index first
    kept = tf.math.is_finite(top)
    pad = [[0, 0], [0, 0], [0, nnei - kk]]
    kept = tf.pad(kept, pad)
    pos = tf.pad(pos, pad)
    j = tf.gather(cand_atom, pos)  # [nf, N, nnei]
    img = tf.gather(cand_img, pos)

    if not spec.mixed_types:
        nei_type = tf.gather(atype, j, batch_dims=1)
        slots = tf.range(nnei)
        blocks = []
        for t, sel_t in enumerate(spec.sel):
            if sel_t == 0:
                continue
            mine = kept & tf.equal(nei_type, t)
            order_key = tf.where(mine, slots, nnei + slots)
            take = min(sel_t, nnei)
            _, first = tf.math.top_k(-order_key, k=take)  # the first sel_t of type t, in distance order
            first = tf.pad(first, [[0, 0], [0, 0], [0, sel_t - take]])
            ok = tf.gather(mine, first, batch_dims=2) & (tf.range(sel_t) < take)
            blocks.append((tf.gather(j, first, batch_dims=2), tf.gather(img, first, batch_dims=2), ok))
        j = tf.concat([b[0] for b in blocks], axis=-1)
        img = tf.concat([b[1] for b in blocks], axis=-1)
        kept = tf.concat([b[2] for b in blocks], axis=-1)

    n = (tf.gather(images, img) + tf.gather(offset, j, batch_dims=1)
         - offset[:, :, None, :])  # image of the wrapped neighbour -> image of the given coordinates
    idx = tf.where(kept, j, -tf.ones_like(j))
    shift = tf.where(kept[..., None], tf.cast(n, tf.int32), tf.zeros_like(n, tf.int32))
    return tf.stop_gradient(idx), tf.stop_gradient(shift)


# ------------------------------------------------------------------------------------------ serving


def head_outputs(kind: str) -> tuple[str, ...]:
    return ENERGY_OUTPUTS if kind == "ener" else TENSOR_OUTPUTS


def metadata(model: MultiTaskModel, heads: Sequence[str], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a user of the SavedModel needs to call it: type map, heads, signatures, neighbour lists."""
    specs = model.neighbor_specs()
    return {
        "format": FORMAT, "format_version": 1, "mtbench_version": __version__,
        "type_map": list(model.type_map),
        "heads": {t: {"kind": model.heads[t].kind, "outputs": list(head_outputs(model.heads[t].kind)),
                      "signature": t, "nlist_signature": t + NLIST_SUFFIX,
                      "numb_fparam": model.heads[t].fitting.numb_fparam,
                      "numb_aparam": model.heads[t].fitting.numb_aparam,
                      "sel_type": list(model.heads[t].fitting.sel_type)} for t in heads},
        "neighbor_lists": [{"idx": f"idx_{k}", "shift": f"shift_{k}", "rcut": s.rcut, "sel": list(s.sel),
                            "mixed_types": s.mixed_types} for k, s in enumerate(specs)],
        **dict(extra or {}),
    }


def _unique_variables(model: MultiTaskModel, heads: Sequence[str]) -> list[tf.Variable]:
    seen: dict[int, tf.Variable] = {}
    for v in (*model.descriptor.variables, *(v for t in heads for v in model.heads[t].variables)):
        seen.setdefault(id(v), v)
    return list(seen.values())


class ServingModule(tf.Module):
    """The object saved: the variables of the descriptor and the chosen heads, and the metadata.

    The model itself is only captured by the signature functions (not tracked), so the SavedModel's object graph
    is just variables: nothing mtbench-specific is needed to load it.
    """

    def __init__(self, model: MultiTaskModel, heads: Sequence[str], meta: Mapping[str, Any]) -> None:
        super().__init__(name="mtbench_model")
        self.model_variables = _unique_variables(model, heads)
        self.metadata_json = tf.Variable(json.dumps(meta), trainable=False, name="metadata_json")


def signature_functions(model: MultiTaskModel, heads: Sequence[str], meta: Mapping[str, Any]) -> dict[str, Any]:
    """``{signature name: concrete function}`` for ``tf.saved_model.save`` (see the module docstring)."""
    nspecs = model.neighbor_specs()
    text = json.dumps(meta)
    fns = {"metadata": tf.function(lambda: {"json": tf.constant(text)}, input_signature=[]).get_concrete_function()}
    for task in heads:
        with_nlist, in_graph = _head_functions(model, task, nspecs)
        fns[task] = in_graph
        fns[task + NLIST_SUFFIX] = with_nlist
    return fns


def _head_functions(model: MultiTaskModel, task: str, nspecs: Sequence[NeighborSpec]) -> tuple[Any, Any]:
    """The concrete functions of head ``task``: with neighbour-list inputs, and building the lists itself.

    The second calls the first, so the model is traced once per head.
    """
    head = model.heads[task]
    nfp, nap = head.fitting.numb_fparam, head.fitting.numb_aparam
    base = [tf.TensorSpec([None, None, 3], tf.float64, name="coord"),
            tf.TensorSpec([None, 3, 3], tf.float64, name="box"),
            tf.TensorSpec([None, None], tf.int32, name="atype")]
    nl_specs = []
    for k, s in enumerate(nspecs):
        nl_specs += [tf.TensorSpec([None, None, s.nnei], tf.int32, name=f"idx_{k}"),
                     tf.TensorSpec([None, None, s.nnei, 3], tf.int32, name=f"shift_{k}")]
    params = ([tf.TensorSpec([None, nfp], tf.float64, name="fparam")] if nfp else []) + \
             ([tf.TensorSpec([None, None, nap], tf.float64, name="aparam")] if nap else [])

    def with_nlist(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = {spec.name: arg for spec, arg in zip(base + nl_specs + params, args)}
        nlists = {s: (inputs[f"idx_{k}"], inputs[f"shift_{k}"]) for k, s in enumerate(nspecs)}
        out = model.predict(task, inputs["coord"], inputs["box"], inputs["atype"], nlists, inputs.get("fparam"),
                            inputs.get("aparam"))
        return {k: tf.identity(out[k], name=k) for k in head_outputs(head.kind)}

    core = tf.function(with_nlist, input_signature=base + nl_specs + params, autograph=False)
    core_concrete = core.get_concrete_function()

    def in_graph(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        coord, box, atype, *rest = args
        lists = []
        for s in nspecs:
            lists += list(graph_neighbor_list(coord, box, atype, s, model.ntypes))
        return core(coord, box, atype, *lists, *rest)

    outer = tf.function(in_graph, input_signature=base + params, autograph=False)
    return core_concrete, outer.get_concrete_function()


def save_savedmodel(out_dir: str | Path, model: MultiTaskModel, heads: Sequence[str] | None = None, *,
                    spec: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` (only ``heads``, default all) as a SavedModel folder ``out_dir`` (replaced if it exists).

    ``spec``/``meta`` go into ``assets/mtbench_model.h5``; ``meta`` is also part of the ``metadata`` signature.
    """
    from mtbench.export.load import SAVEDMODEL_ASSET, save_mtbench_model

    out = Path(out_dir)
    heads = list(model.heads) if heads is None else list(heads)
    sub = model if heads == list(model.heads) else MultiTaskModel(model.type_map, model.descriptor,
                                                                     {t: model.heads[t] for t in heads})
    info = metadata(sub, heads, meta)
    module = ServingModule(sub, heads, info)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    with portable_graphs():  # stock ops only: the SavedModel must load in plain TensorFlow
        signatures = signature_functions(sub, heads, info)
        if len(heads) == 1:
            signatures["serving_default"] = signatures[heads[0]]
        tf.saved_model.save(module, str(tmp), signatures=signatures,
                            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    save_mtbench_model(tmp / "assets" / SAVEDMODEL_ASSET, sub, spec=spec, meta=info)
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
