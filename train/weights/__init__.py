"""Weights in and out: published PyTorch checkpoints read without PyTorch (`trainctl import-weights`), and the
reference code's names and layouts through each arch's table (train/archs/torch_layout.py)."""
