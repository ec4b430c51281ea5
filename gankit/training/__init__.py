"""The training engine: the one loop (trainer.py) and what it keeps a run with.

run_folder.py   the run folder's paths and the lock that makes its trainer its only writer
checkpoint.py   checkpoints (safetensors + JSON, never pickle) and resuming from them
metrics_log.py  metrics.csv, TensorBoard events and loss.png
ema.py          the moving average of the sampling network's weights
graphs.py       the step as one CUDA graph
distributed.py  data parallelism under torchrun
cpu.py          how many CPU threads to train with
budget.py       budgets in minutes

Nothing is imported here, so that a model or a use can import one of these modules without
loading the loop (and the models it imports).
"""
