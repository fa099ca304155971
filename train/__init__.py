"""gopro-deblur training: tf.data input, DeblurGAN models and losses, distributed trainer, evaluation, export.

Kept free of imports so that `trainctl --help` stays instant; TensorFlow is imported by the modules that need it.
"""
