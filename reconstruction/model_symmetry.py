"""The symmetry of a catalog model inferred from its mesh (sim.symmetry), once per URDF and scale.

A task names a symmetry from a small vocabulary about the frame's own axes (cube, box, square prism, cylinder
about z, sphere); a scanned can whose axis is the frame's y axis is named 'box' (the largest named group within
its own), yet every turn about that axis maps it onto itself. object_symmetry gives the whole group found in the
mesh for such a model, so the pose estimate does not count those turns as rival poses (the "look again" loop of
a can that is found but never trusted) and the errors do not count them as errors.
"""

from __future__ import annotations

import functools

from reconstruction.models import ObjectModel, load_geometry
from sim.scene import resolve_asset_path
from sim.symmetry import MeshSymmetry, mesh_symmetry, named_symmetry


@functools.lru_cache(maxsize=64)
def model_symmetry(urdf: str, scale: float = 1.0) -> MeshSymmetry:
    """The symmetry of the URDF's visual mesh (what the cameras see) at this scale; `.kind` is the named one."""
    return mesh_symmetry(load_geometry(resolve_asset_path(urdf), float(scale)).mesh)


def object_symmetry(model: ObjectModel) -> MeshSymmetry:
    """The symmetry to pose and judge a model by. 'none' (or 'auto'), or the very kind its mesh is named (the task
    inferred it): the whole group found in the visual mesh, which may be richer than its name (a can lying along
    y is named 'box', yet turns by any angle about y). Any other declared kind wins as declared."""
    if model.symmetry not in ("none", "auto"):
        inferred = model_symmetry(model.urdf, model.scale)
        named = named_symmetry(model.symmetry)
        return inferred if inferred.kind == model.symmetry and inferred.order > named.order else named
    return model_symmetry(model.urdf, model.scale)
