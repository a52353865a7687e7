"""The symmetry of a catalog model inferred from its mesh (sim.symmetry), once per URDF and scale."""

from __future__ import annotations

import functools

from reconstruction.models import load_geometry
from sim.scene import resolve_asset_path
from sim.symmetry import MeshSymmetry, mesh_symmetry


@functools.lru_cache(maxsize=64)
def model_symmetry(urdf: str, scale: float = 1.0) -> MeshSymmetry:
    """The symmetry of the URDF's visual mesh (what the cameras see) at this scale; `.kind` is the named one."""
    return mesh_symmetry(load_geometry(resolve_asset_path(urdf), float(scale)).mesh)
