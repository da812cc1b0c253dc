"""Built-in water data: generated on first use, cached, no download.

A periodic box of flexible water (32 molecules at 1 g/cm^3, 300 K) is equilibrated by
Langevin MD (ASE) with flexible TIP3P, then continued twice: once driven by flexible TIP3P,
once by flexible TIP4P (see :mod:`mtbench.data.water_models`). Frames are written as
standard deepmd/npy systems that dpdata and DeePMD-kit read as they are::

    <root>/manifest.json                          # how and from what it was made
    <root>/water_tip3p/{train,val}/sys_000/       # energy, force, virial (flexible TIP3P)
    <root>/water_tip4p/{train,val}/sys_000/       # energy, force, virial (flexible TIP4P)
    <root>/water_dipole/{train,val}/atomic_system/  # atomic_dipole.npy on O  [nf, 3 n_O]
    <root>/water_dipole/{train,val}/global_system/  # dipole.npy, the sum      [nf, 3]
    <root>/water_polar/{train,val}/atomic_system/   # atomic_polarizability.npy [nf, 9 n_O]
    <root>/water_polar/{train,val}/global_system/   # polarizability.npy        [nf, 9]

Frames: each of the two runs relaxes ``n_relax`` steps, then records ``2 (n_train + n_val)``
frames ``stride`` steps apart. Its even frames are labelled with its own model (energy
sets); its odd frames carry the tensor labels (TIP3P run: atomic systems, TIP4P run: global
systems). In each set ``n_val`` frames spread evenly over the run are for validation and the
others for training, so both splits sample the same stretch of the trajectory: a box that still drifts
after switching to a new model (v1 took the *last* frames for validation, and the TIP4P validation mean sat
2.5 standard deviations below the training mean) drifts in both alike. The cutoff ``rc`` is the largest multiple of 0.1 Å below half the box
(4.9 Å for the default 9.86 Å box), with a 1 Å wide smooth switch as in ASE's models.
Units: eV, Å, e Å (dipole), Å^3 (polarizability); virial = -dE/d(strain) as DeePMD reads it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units

from mtbench.data.water_models import (
    MODELS,
    TIP3P,
    FlexibleWater,
    IntraParams,
    molecular_dipoles,
    molecular_polarizabilities,
    water_terms,
)
from mtbench.errors import DataError, SpecError

#: Bump when the generated data change; it names the cache folder, so old caches stay valid.
GENERATOR_VERSION = 2  # 2: validation frames spread over the trajectory (v1: its last part)
TYPE_MAP = ("O", "H")
MANIFEST = "manifest.json"
ENERGY_LEVELS = ("tip3p", "tip4p")
BUILTIN_DATASETS = tuple(
    f"{name}/{split}"
    for name in ("water_tip3p", "water_tip4p", "water_dipole", "water_polar")
    for split in ("train", "val")
)
#: Settings for a sub-second data set in unit tests: ``generate_water_dataset(d, **TINY_SETTINGS)``.
TINY_SETTINGS: dict[str, int] = {
    "n_molecules": 8,
    "n_train": 4,
    "n_val": 2,
    "n_equil": 40,
    "n_relax": 10,
    "stride": 3,
}

_WATER_MASS_G_MOL = 2 * 1.00794 + 15.9994  # ASE's standard masses
_AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class WaterBoxSettings:
    """Everything that determines a generated data set (besides the seed)."""

    n_molecules: int = 32
    n_train: int = 100
    n_val: int = 20
    density: float = 1.0  # g / cm^3
    temperature: float = 300.0  # K
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.02
    n_equil: int = 3000  # shared equilibration (flexible TIP3P), 1.5 ps
    n_relax: int = 1000  # per energy level, with its own model, before recording (0.5 ps)
    stride: int = 10  # steps between recorded frames
    width: float = 1.0  # Å, width of the smooth cutoff
    rc_max: float = 6.0  # Å; the cutoff is the largest multiple of 0.1 Å that fits the box

    def __post_init__(self) -> None:
        for key in ("n_molecules", "n_train", "n_val", "stride"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("n_equil", "n_relax"):
            if int(getattr(self, key)) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")

    @property
    def box_length(self) -> float:
        """Cubic box edge (Å) holding ``n_molecules`` at ``density``."""
        volume_cm3 = self.n_molecules * _WATER_MASS_G_MOL / _AVOGADRO / self.density
        return (volume_cm3 * 1e24) ** (1.0 / 3.0)

    @property
    def rc(self) -> float:
        """Model cutoff: must not exceed half the box (minimum image), capped at ``rc_max``."""
        return min(self.rc_max, math.floor((self.box_length / 2.0 - 0.01) * 10.0) / 10.0)

    @property
    def frames_per_trajectory(self) -> int:
        return 2 * (self.n_train + self.n_val)

    @property
    def total_steps(self) -> int:
        """MD steps of one generation: shared equilibration plus one run per energy level."""
        return self.n_equil + len(ENERGY_LEVELS) * (self.n_relax + self.frames_per_trajectory * self.stride)


# ---------------------------------------------------------------------------------------------
# Cache


def default_cache_dir() -> Path:
    """``$MTBENCH_DATA_DIR`` if set, else ``~/.cache/mtbench/data``."""
    env = os.environ.get("MTBENCH_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mtbench" / "data"


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SpecError("seed", f"the built-in data seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def _is_complete(root: Path) -> bool:
    return (root / MANIFEST).is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (POSIX); elsewhere only the atomic rename protects the cache."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def builtin_root_path(seed: int = 1, *, cache_dir: str | Path | None = None) -> Path:
    """Where the built-in data for ``seed`` lives in the cache (generated or not): the one owner of that name."""
    seed = _check_seed(seed)
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"water-v{GENERATOR_VERSION}-seed{seed}"


def builtin_data_root(seed: int = 1, *, cache_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Root folder of the built-in data for ``seed``, generating it once if missing.

    Generation goes to a temporary folder that is renamed into place, under a file lock, so
    parallel processes (sweeps) never see a half-written set and generate it only once.
    """
    root = builtin_root_path(seed, cache_dir=cache_dir)
    base = root.parent
    if _is_complete(root):
        return root
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            str(base), f"cannot create the built-in data cache ({exc.strerror}); set MTBENCH_DATA_DIR"
        ) from None
    with _file_lock(base / f".{root.name}.lock"):
        if _is_complete(root):
            return root
        if root.exists():
            raise DataError(
                str(root), "incomplete built-in data (no manifest.json); delete this folder to regenerate it"
            )
        tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=base))
        try:
            tmp.chmod(0o755)
            generate_water_dataset(tmp, seed=seed, progress=progress, announce_path=root)
            try:
                os.rename(tmp, root)
            except OSError:
                if not _is_complete(root):  # not a process that won the race: a real failure
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return root


def builtin_path(relpath: str, seed: int = 1) -> str:
    """Absolute path of a built-in data set folder, e.g. ``"water_tip3p/train"`` (generated on first use)."""
    key = str(relpath).strip().strip("/")
    if key not in BUILTIN_DATASETS:
        raise SpecError(
            str(relpath), f"not a built-in data set; choose one of: {', '.join(BUILTIN_DATASETS)}"
        )
    return str(builtin_data_root(seed) / key)


# ---------------------------------------------------------------------------------------------
# Sampling


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly random rotation matrix (from a normalised Gaussian quaternion)."""
    w, x, y, z = rng.standard_normal(4)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _lattice_sites(n: int, length: float) -> np.ndarray:
    """Simple-cubic or fcc sites in a cubic box, whichever keeps ``n`` molecules further apart."""
    m_sc = math.ceil(round(n ** (1.0 / 3.0), 9))
    k_fcc = math.ceil(round((n / 4.0) ** (1.0 / 3.0), 9))
    if length / m_sc >= length / k_fcc / math.sqrt(2.0):
        cells, basis = m_sc, np.zeros((1, 3))
    else:
        cells, basis = k_fcc, np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    return ((grid[:, None, :] + basis[None]).reshape(-1, 3) + 0.25) * (length / cells)


def initial_water_box(settings: WaterBoxSettings, rng: np.random.Generator) -> Atoms:
    """Molecules of equilibrium geometry, randomly oriented, on lattice sites drawn at random."""
    intra = IntraParams()
    half = intra.theta0 / 2.0
    molecule = intra.r0 * np.array(
        [[0.0, 0.0, 0.0], [math.sin(half), 0.0, math.cos(half)], [-math.sin(half), 0.0, math.cos(half)]]
    )
    length = settings.box_length
    sites = _lattice_sites(settings.n_molecules, length)
    sites = sites[np.sort(rng.choice(len(sites), settings.n_molecules, replace=False))]
    positions = np.concatenate([site + molecule @ _random_rotation(rng).T for site in sites])
    return Atoms("OH2" * settings.n_molecules, positions=positions, cell=np.eye(3) * length, pbc=True)


def _langevin(atoms: Atoms, settings: WaterBoxSettings, rng: np.random.Generator):
    from ase.md.langevin import Langevin

    return Langevin(
        atoms,
        timestep=settings.timestep_fs * units.fs,
        temperature_K=settings.temperature,
        friction=settings.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )


def equilibrated_water_box(
    settings: WaterBoxSettings, rng: np.random.Generator, on_steps: Callable[[int], None] | None = None
) -> Atoms:
    """Lattice start, Maxwell-Boltzmann momenta, then ``n_equil`` Langevin steps of flexible TIP3P."""
    atoms = initial_water_box(settings, rng)
    masses = atoms.get_masses()[:, None]
    momenta = rng.standard_normal((len(atoms), 3)) * np.sqrt(masses * units.kB * settings.temperature)
    atoms.set_momenta(momenta - masses * momenta.sum(axis=0) / masses.sum())
    atoms.calc = FlexibleWater("tip3p", rc=settings.rc, width=settings.width)
    dyn = _langevin(atoms, settings, rng)
    for done in range(0, settings.n_equil, 250):  # in chunks, for the progress bar
        chunk = min(250, settings.n_equil - done)
        dyn.run(chunk)
        if on_steps:
            on_steps(chunk)
    return atoms


def sample_trajectory(
    start: Atoms,
    settings: WaterBoxSettings,
    model: str,
    rng: np.random.Generator,
    on_steps: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Positions [n_frames, n_atoms, 3] of Langevin MD with the flexible ``model`` from ``start``.

    The first ``n_relax`` steps let the box adapt to ``model`` and are not recorded.
    """
    atoms = start.copy()
    atoms.calc = FlexibleWater(model, rc=settings.rc, width=settings.width)
    dyn = _langevin(atoms, settings, rng)
    if settings.n_relax:
        dyn.run(settings.n_relax)
    frames = np.empty((settings.frames_per_trajectory, len(atoms), 3))
    for k in range(settings.frames_per_trajectory):
        dyn.run(settings.stride)
        frames[k] = atoms.get_positions()
        if on_steps:
            on_steps(settings.stride + (settings.n_relax if k == 0 else 0))
    return frames


# ---------------------------------------------------------------------------------------------
# Labelling and writing


def _wrap_molecules(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Move each molecule by a lattice vector so its O lies in the box; molecules stay whole."""
    x = positions.reshape(-1, 3, 3)
    shift = np.floor(x[:, 0] @ np.linalg.inv(cell)) @ cell
    return (x - shift[:, None, :]).reshape(-1, 3)


def _write_system(
    path: Path, types: np.ndarray, coords: np.ndarray, cell: np.ndarray, labels: dict[str, np.ndarray]
) -> None:
    """One deepmd/npy system: type.raw, type_map.raw and set.000/*.npy (float64)."""
    (path / "set.000").mkdir(parents=True)
    (path / "type.raw").write_text("".join(f"{t}\n" for t in types))
    (path / "type_map.raw").write_text("".join(f"{name}\n" for name in TYPE_MAP))
    nf = len(coords)
    np.save(path / "set.000" / "coord.npy", coords.reshape(nf, -1))
    np.save(path / "set.000" / "box.npy", np.tile(cell.reshape(1, 9), (nf, 1)))
    for name, value in labels.items():
        value = np.asarray(value, dtype=np.float64)
        np.save(path / "set.000" / f"{name}.npy", value if value.ndim == 1 else value.reshape(nf, -1))


def _energy_labels(
    frames: np.ndarray, cell: np.ndarray, model: str, settings: WaterBoxSettings
) -> dict[str, np.ndarray]:
    terms = [water_terms(x, cell, MODELS[model], settings.rc, settings.width) for x in frames]
    return {
        "energy": np.array([t.energy for t in terms]),
        "force": np.stack([-t.gradient for t in terms]),
        "virial": np.stack([t.virial for t in terms]),
    }


def validation_split(n_train: int, n_val: int) -> dict[str, np.ndarray]:
    """Frame indices of the train and val splits of ``n_train + n_val`` frames: val evenly spread, none at either
    end (the first and last frames are the least like the others in a drifting run)."""
    n = n_train + n_val
    val = np.unique(np.round(np.linspace(0, n - 1, n_val + 2)[1:-1]).astype(int))
    mask = np.zeros(n, bool)
    mask[val] = True
    return {"train": np.flatnonzero(~mask), "val": np.flatnonzero(mask)}


def _tensor_labels(frames: np.ndarray, cell: np.ndarray) -> dict[str, np.ndarray]:
    dip = np.stack([molecular_dipoles(x, cell, TIP3P) for x in frames])  # [nf, n_mol, 3]
    pol = np.stack([molecular_polarizabilities(x, cell) for x in frames])  # [nf, n_mol, 3, 3]
    return {"dipole": dip, "polar": pol}


def generate_water_dataset(
    out_dir: str | Path,
    *,
    seed: int = 1,
    n_molecules: int = 32,
    n_train: int = 100,
    n_val: int = 20,
    n_equil: int = 3000,
    n_relax: int = 1000,
    stride: int = 10,
    temperature: float = 300.0,
    progress: bool = False,
    announce_path: str | Path | None = None,
) -> Path:
    """Sample, label and write the built-in water data into ``out_dir`` (new or empty).

    For a sub-second set (unit tests) pass ``**TINY_SETTINGS``. ``announce_path`` is the
    folder named in the progress message (the final cache folder when writing to a temp dir).
    """
    seed = _check_seed(seed)
    settings = WaterBoxSettings(
        n_molecules=n_molecules,
        n_train=n_train,
        n_val=n_val,
        n_equil=n_equil,
        n_relax=n_relax,
        stride=stride,
        temperature=temperature,
    )
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise DataError(str(out), "output folder for the water data is not empty")
    out.mkdir(parents=True, exist_ok=True)
    cell = np.eye(3) * settings.box_length
    equil_rng, *level_rngs = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(1 + len(ENERGY_LEVELS))
    )

    started = time.perf_counter()
    with _progress(progress, settings, announce_path or out) as advance:
        start = equilibrated_water_box(settings, equil_rng, advance)
        trajectories = {
            level: np.stack(
                [_wrap_molecules(x, cell) for x in sample_trajectory(start, settings, level, rng, advance)]
            )
            for level, rng in zip(ENERGY_LEVELS, level_rngs, strict=True)
        }
    sampled = time.perf_counter()

    n_atoms = 3 * settings.n_molecules
    types = np.tile([0, 1, 1], settings.n_molecules)
    splits = validation_split(settings.n_train, settings.n_val)
    for level, traj in trajectories.items():
        even = traj[0::2]
        labels = _energy_labels(even, cell, level, settings)
        for split, sl in splits.items():
            _write_system(
                out / f"water_{level}" / split / "sys_000",
                types,
                even[sl],
                cell,
                {k: v[sl] for k, v in labels.items()},
            )

    for part, traj in (("atomic_system", trajectories["tip3p"]), ("global_system", trajectories["tip4p"])):
        odd = traj[1::2]
        tensors = _tensor_labels(odd, cell)
        for task, key in (("dipole", "dipole"), ("polar", "polarizability")):
            value = tensors[task]
            if part == "atomic_system":
                name, value = f"atomic_{key}", value.reshape(len(odd), -1)
            else:
                name, value = key, value.sum(axis=1).reshape(len(odd), -1)
            for split, sl in splits.items():
                _write_system(out / f"water_{task}" / split / part, types, odd[sl], cell, {name: value[sl]})

    manifest = {
        "generator": "mtbench.data.synthetic.generate_water_dataset",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "settings": asdict(settings),
        "box_length": settings.box_length,
        "rc": settings.rc,
        "n_atoms": n_atoms,
        "type_map": list(TYPE_MAP),
        "intramolecular": asdict(IntraParams()),
        "units": {
            "energy": "eV",
            "length": "Å",
            "dipole": "e Å",
            "polarizability": "Å^3",
            "virial": "eV (-dE/dstrain)",
        },
        "datasets": list(BUILTIN_DATASETS),
        "frames": {"train": settings.n_train, "val": settings.n_val},
        "seconds": {
            "sampling": round(sampled - started, 2),
            "total": round(time.perf_counter() - started, 2),
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return out


@contextlib.contextmanager
def _progress(
    enabled: bool, settings: WaterBoxSettings, where: str | Path
) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar over MD steps, with a one-line note on what is happening and where."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mtbench.terminal import console as make_console

    console = make_console(stderr=True)
    console.print(
        f"mtbench: one-time generation of the built-in water data (~30 s), cached in {where}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("water MD", total=settings.total_steps)
        yield lambda n: bar.advance(task, n)
