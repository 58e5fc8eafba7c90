"""What every study shares: its output folder, its config, figures (PNG and PDF), progress."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from mpi4py import MPI

from cqdlaser.geometry.config import load_device
from cqdlaser.geometry.device import Device

CONFIGS = Path(__file__).parent / "configs"
T = TypeVar("T")


def config_path(name: str) -> Path:
    """The path of an example config shipped with cqdlaser (``paper_inorganic_mgf2`` ...)."""
    return CONFIGS / f"{name}.toml"


def paper_device(name: str, overrides: Iterable[str] = ()) -> Device:
    """An example device by config name, with overrides."""
    return load_device(config_path(name), list(overrides))


def save_figure(fig: Any, path: Path, comm: MPI.Comm = MPI.COMM_WORLD) -> list[Path]:
    """Save a matplotlib figure as PNG and PDF (atomically, rank 0 only) and close it."""
    import matplotlib.pyplot as plt

    out = []
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in (".png", ".pdf"):
            target = path.with_suffix(suffix)
            # a fresh name, not mkstemp's 0600 file: the figure follows the user's umask
            tmp = path.parent / f".{target.name}.{uuid.uuid4().hex[:12]}{suffix}"
            try:
                fig.savefig(tmp, dpi=150, bbox_inches="tight")
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            out.append(target)
    plt.close(fig)
    return out


def progress[T](
    items: Iterable[T], *, desc: str, total: int | None = None, comm: MPI.Comm = MPI.COMM_WORLD
) -> Iterator[T]:
    """Iterate with a progress bar on rank 0 (on stderr; silent on other ranks)."""
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, total=total, disable=comm.rank != 0, leave=False)


def matplotlib_backend() -> None:
    """Use a non-interactive backend (studies run on clusters and in containers)."""
    import matplotlib as mpl

    mpl.use("Agg")
