"""Training engine: DeepSpeed ZeRO-3 for both stages (MAE pre-pretraining, WSP) and fine-tuning.

config -> distributed -> parallelize (zero.Init, checkpointing) -> load_weights -> optim/schedule -> loop
-> checkpoints/logs
"""
