"""Op-level profile of one se_atten descriptor training step (micro_se_atten.py's step: forward, force, force-loss
second derivative), grouped by component, from TensorFlow's profiler (XSpace trace).

    python benchmarks/profile_se_atten.py [--type se_atten|se_atten_v2] [--reps 3] [--dir /tmp/prof]

Components are found by name scopes this script wraps around the descriptor's parts (the package itself carries
none, so the numbers of the run are the normal path's): embedding nets (``MLP``), LayerNorm, attention layer
(rest of ``GatedAttentionLayer``), attention gates, pair embedding input (type-embedding gather/concat), env matrix
(``env_matrix`` + ``normalize_env``); the rest (pair vectors, G^T R, the descriptor product, the step's loss) is
"other". Derivative order is the number of ``gradient_tape/`` prefixes: 0 forward, 1 force and weight gradient,
2 the second derivative of the force loss. Time is the kernels' summed duration (2 cores: ~CPU time, not wall).
"""

from __future__ import annotations

import argparse
import collections
import functools
import re
import sys
from pathlib import Path

import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCOPES = {"ln": "LayerNorm", "attn_gates": "attention gates", "attn": "attention layer", "emb_net": "embedding nets",
          "pair_in": "type-embedding gather/concat", "env": "env matrix", "": "other"}


def _scoped(fn, scope: str):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with tf.name_scope(scope):
            return fn(*args, **kwargs)
    return wrapper


def install_scopes() -> None:
    from mtbench.model import networks
    from mtbench.model.descriptor import se_atten

    se_atten.LayerNorm.__call__ = _scoped(se_atten.LayerNorm.__call__, "ln")
    se_atten.GatedAttentionLayer.__call__ = _scoped(se_atten.GatedAttentionLayer.__call__, "attn")
    se_atten.GatedAttentionLayer.gates = _scoped(se_atten.GatedAttentionLayer.gates, "attn_gates")
    se_atten.GatedAttentionLayer.padding_rows = _scoped(se_atten.GatedAttentionLayer.padding_rows, "attn")
    networks.MLP.__call__ = _scoped(networks.MLP.__call__, "emb_net")
    se_atten.DescrptSeAtten._pair_embedding = _scoped(se_atten.DescrptSeAtten._pair_embedding, "pair_in")
    se_atten.env_matrix = _scoped(se_atten.env_matrix, "env")
    se_atten.normalize_env = _scoped(se_atten.normalize_env, "env")


def classify(op: str) -> tuple[str, int]:
    """(component, derivative order) of a kernel event ``name:Type``."""
    name = op.split(":")[0]
    order = 0
    while name.startswith("gradient_tape/"):
        name, order = name[len("gradient_tape/"):], order + 1
    parts = [re.sub(r"_\d+$", "", part) for part in name.split("/")]  # a scope entered again is "attn_1"
    for scope in ("ln", "attn_gates", "emb_net", "attn", "pair_in", "env"):  # innermost first
        if scope in parts:
            return SCOPES[scope], order
    return SCOPES[""], order


def table(xplane: Path, reps: int) -> str:
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(xplane.read_bytes())
    tot: collections.Counter = collections.Counter()
    attn_ops: collections.Counter = collections.Counter()
    for plane in space.planes:
        md = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute") and "Inter" not in line.name:
                continue  # kernels run on the executor threads; the python line holds the enclosing calls
            for ev in line.events:
                name = md[ev.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    tot[classify(name)] += ev.duration_ps / 1e12 / reps
                    if classify(name)[0] == "attention layer":
                        attn_ops[name.rsplit(":", 1)[1]] += ev.duration_ps / 1e12 / reps
    total = sum(tot.values())
    comps = sorted({c for c, _ in tot}, key=lambda c: -sum(v for (k, _), v in tot.items() if k == c))
    rows = ["| component | forward | 1st derivative | 2nd derivative | total s/step | share |", "|---|---|---|---|---|---|"]
    for c in comps:
        v = [tot.get((c, o), 0.0) for o in (0, 1, 2)]
        rows.append(f"| {c} | {v[0]:.3f} | {v[1]:.3f} | {v[2]:.3f} | {sum(v):.3f} | {100 * sum(v) / total:.0f}% |")
    v = [sum(x for (_, o), x in tot.items() if o == k) for k in (0, 1, 2)]
    rows.append(f"| all kernels | {v[0]:.3f} | {v[1]:.3f} | {v[2]:.3f} | {total:.3f} | 100% |")
    top = ", ".join(f"{op} {100 * v / total:.0f}%" for op, v in attn_ops.most_common(5))
    rows.append(f"\nattention layer by op type (share of all kernels): {top}")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--type", default="se_atten")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/profile_se_atten")
    ap.add_argument("--xplane", default=None, help="only tabulate this existing trace")
    args = ap.parse_args()
    if args.xplane is None:
        install_scopes()
        import micro_se_atten

        sys.argv = [sys.argv[0], "--type", args.type, "--reps", str(args.reps), "--profile", args.dir]
        micro_se_atten.main()
        xplane = sorted(Path(args.dir).rglob("*.xplane.pb"))[-1]
    else:
        xplane = Path(args.xplane)
    print(table(xplane, args.reps))


if __name__ == "__main__":
    main()
