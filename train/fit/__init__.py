"""Training: `trainctl fit` (trainer), the compiled steps-per-call loop (loop), the tf.data input (data, augment),
losses and optimizers (what the recipes in train/recipes/ are made of), EMA (ema), hooks, sample grids (samples)
and starting from other weights (finetune).

With train/recipes/ the top of train/ below the CLI: it may import every other wing.
"""
