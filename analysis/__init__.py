"""analysis: scaling-law fits, compute-optimal frontiers and plots over sweep results (no torch needed)."""
