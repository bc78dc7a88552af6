"""scaling: pretrain Vision Transformers with MAE pre-pretraining and weakly-supervised pretraining.

Data flows one way: config -> data -> models -> engine -> logs/checkpoints -> eval -> laws -> plots.
"""

__version__ = "0.1.0"
