"""`cert-loader bench`: the product's rates next to the limits measured in the same run, as ratios (machines are noisy)."""

from __future__ import annotations

from cert_loader.bench.run import SECTIONS, render, run_bench

__all__ = ["SECTIONS", "render", "run_bench"]
