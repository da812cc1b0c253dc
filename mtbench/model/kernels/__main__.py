"""``python -m mtbench.model.kernels``: build the compiled kernels now (training builds them on first use) and say
where they are, or why TensorFlow's own kernels will be used."""

from __future__ import annotations

import sys

from mtbench import runtime


def main() -> int:
    runtime.import_tensorflow_quietly()
    from mtbench.model.kernels.library import compiled

    built = compiled()
    if built.module is None:
        print(f"mtbench kernels: not available ({built.reason}); TensorFlow's own kernels are used")
        return 1
    print(f"mtbench kernels: {built.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
