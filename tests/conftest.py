"""Shared pytest setup: keep TensorFlow quiet and on the Keras TF backend in every test process."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
