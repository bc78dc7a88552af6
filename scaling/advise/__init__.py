"""`scaling advise`: which runs to train next to narrow a decision most per FLOP.

- decision.py: the decision (n_opt@C, predict@..., multiplier@Y) as a function of the law's parameters;
- score.py: greedy variance reduction from bootstrap draws, and the value of information (its derivation);
- advice.py: fit or reuse a FIT.json, score the candidates, build ADVICE.json;
- candidates.py: candidate grids from the model registry x sample budgets, chosen runs as sweep specs;
- cli.py: `scaling advise` itself.
"""
