"""Transfer evaluation of a trained encoder: linear probe, kNN, low-shot and fine-tuning (`scaling eval`).

Features once, protocols many: `features.extract` runs the frozen encoder over a labelled set once and caches
the cls token and mean-pooled patch tokens under a key of weights + data + transform; every feature protocol
(probe.py, sgd_probe.py, knn.py, lowshot.py) works on those arrays. Fine-tuning (finetune.py) runs the
engine's `finetune` stage instead. cli.py writes EVAL.json and the evaluated run's summary.json["eval"].
"""
