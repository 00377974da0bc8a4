"""Off-screen pyvista rendering that a later torch import survives."""

from __future__ import annotations

from typing import Any

#: pyvista camera positions (position, focal point, view up) of the two views a patient's 3-D
#: pictures show: from anterior (+y) and from posterior, superior (-z) up
FRONT_VIEW = [(0, 1, 0), (0, 0, 0), (0, 0, -1)]
BACK_VIEW = [(0, -1, 0), (0, 0, 0), (0, 0, -1)]


def offscreen_plotter(**kwargs: Any):
    """A ``pyvista.Plotter(off_screen=True, **kwargs)``, triton's LLVM loaded first.

    Headless VTK renders through Mesa's llvmpipe, which carries its own LLVM; loading libtriton
    after it (``import torch._dynamo``, which Lightning does) segfaults the process — a notebook
    or benchmark that draws a patient's figure and then trains would die (pyvista#7943 is the
    TensorFlow case). Loaded in the other order both work; it costs 0.3 s where triton exists."""
    try:
        import triton._C.libtriton  # noqa: F401
    except ImportError:
        pass
    import pyvista

    pyvista.OFF_SCREEN = True
    return pyvista.Plotter(off_screen=True, **kwargs)
