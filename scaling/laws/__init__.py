"""Scaling laws: fit convergence and performance curves across model and data size, carry the bootstrap
uncertainty to the decision (N_opt, D_opt, accuracy at a budget, compute multipliers), draw the figures.

Import from the modules (this package file stays empty so that `scaling fit` can configure the process
before numpy loads):
- laws.py: `LAWS`, `get_law`, the declared laws;     fit.py: `fit` (variable projection + refine);
- results.py: `collect`, `select` (results tables);  convergence.py: curves, S1/S2 (Tissue et al. 2024);
- bootstrap.py: `run_bootstrap`;  decisions.py: N_opt/D_opt, compute multiplier;  frontier.py: frontiers;
- pipeline.py: `fit_table`, `fit_curves` (what `scaling fit` runs);  plots.py: the figures.
"""
