"""`scaling sweep`: a scaling study as files: one resolved config and one job script per run, sweep.csv,
submit.sh; `sweep status` (asking Slurm once per sweep), `sweep submit` (what a slurm sweep's submit.sh runs) and
`sweep run` (the local scheduler) read the same folder."""
