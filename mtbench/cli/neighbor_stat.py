"""``python -m mtbench.neighbor_stat`` / ``mtbench neighbor-stat``: neighbour statistics of data systems and the
``sel`` to use (what is computed: :mod:`mtbench.evaluation.neighbor_stat`).

    python -m mtbench.neighbor_stat -s data/ -r 6.0 -t O H
    python -m mtbench.neighbor_stat -s builtin:water_tip3p/train -r 4.5 --mixed     # se_atten: one total
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtbench.evaluation.neighbor_stat import NeighborStat


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mtbench.neighbor_stat",
                                description="Neighbour statistics of data systems and the sel to use "
                                            "(DeePMD-kit's `dp neighbor-stat`).",
                                epilog="Example: python -m mtbench.neighbor_stat -s data/ -r 6.0 -t O H")
    p.add_argument("-s", "--system", nargs="+", default=["."],
                   help="data systems, folders holding systems, or builtin:NAME (default: .)")
    p.add_argument("-r", "--rcut", type=float, required=True, help="cutoff radius (Å)")
    p.add_argument("-t", "--type-map", nargs="+", help="type names (default: the systems' type_map.raw)")
    p.add_argument("--mixed", "--mixed-type", "--one-type", dest="mixed", action="store_true",
                   help="count all types together (se_atten's single sel)")
    p.add_argument("--ratio", type=float, default=1.1, help="sel = max count x ratio, rounded up to 4 (default 1.1)")
    p.add_argument("--json", metavar="OUT", help="also write the statistics as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="one row per system")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> "NeighborStat":
    from mtbench.errors import exit_on_user_error

    args = parse_args(argv)

    def go() -> "NeighborStat":
        from rich.table import Table

        from mtbench import api
        from mtbench.terminal import console as make_console

        stat = api.neighbor_stat(args.system, args.rcut, args.type_map, mixed=args.mixed, ratio=args.ratio,
                                 json=args.json)
        console = make_console()
        nframes = sum(s.nframes for s in stat.systems)
        names = ["all types"] if stat.mixed_types else stat.type_map
        table = Table(title=f"neighbours within rcut = {stat.rcut:g} Å: {len(stat.systems)} system(s), "
                            f"{nframes} frames", title_justify="left")
        table.add_column("neighbour type")
        table.add_column("max neighbours", justify="right")
        table.add_column(f"sel (x{stat.ratio:g}, up to 4)", justify="right")
        for name, count, sel in zip(names, stat.max_counts, stat.sel):
            table.add_row(name, str(count), str(sel))
        console.print(table)
        if args.verbose:
            per = Table(title="per system", title_justify="left")
            per.add_column("system", overflow="fold")
            per.add_column("frames", justify="right")
            per.add_column("max neighbours", justify="right")
            per.add_column("min distance (Å)", justify="right")
            for s in stat.systems:
                per.add_row(s.path, str(s.nframes), str(s.max_counts), f"{s.min_distance:.4f}")
            console.print(per)
        console.print(f"min neighbour distance: {stat.min_distance:.6f} Å" if math.isfinite(stat.min_distance)
                      else "min neighbour distance: no atom has a neighbour within rcut")
        console.print(f"sel: {stat.sel[0] if stat.mixed_types else stat.sel}")
        isolated = sum(s.isolated_atoms for s in stat.systems)
        if isolated:
            console.print(f"note: {isolated} atom(s) over all frames have no neighbour within rcut")
        return stat

    return exit_on_user_error(go, prog="mtbench.neighbor_stat")


if __name__ == "__main__":
    main()
