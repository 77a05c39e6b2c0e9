"""Stiff-aware solvers for gradient flow (issue 7)."""

from ._rkc import RKC2 as RKC2, stability_boundary as stability_boundary


__all__ = ["RKC2", "stability_boundary"]
