"""Training engine: DeepSpeed ZeRO-3 for both stages (MAE pre-pretraining, WSP) and fine-tuning.

config -> distributed -> parallelize (zero.Init, checkpointing) -> optim/schedule -> loop -> checkpoints/logs
"""
