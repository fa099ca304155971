"""Scoring versions against ground truth: `trainctl evaluate` (evaluate), PSNR / SSIM / 3-D SSIM (metrics), one
pair's scores (pair_scores), RealBlur's alignment (alignment), the tables printed (eval_table) and validation
during fit (validation).

Imports downward only: pipeline/, train's base modules, train/run/ and train/inference/.
"""
