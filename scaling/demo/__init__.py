"""`scaling demo`: the whole pipeline on the bundled Fashion-MNIST subset, and the paper's claim measured in
miniature: shards -> stage 1 (MAE) -> stage 2 (WSP from MAE, and from random init) -> evaluation -> a small
sweep with its fit and compute-vs-accuracy figure -> report.md.

settings.py: what each mode runs; folder.py: the --out folder's stamp; steps.py: the six steps;
launch.py: running a sweep folder's jobs; report.py: report.md from the run outputs; stats.py: intervals.
"""
