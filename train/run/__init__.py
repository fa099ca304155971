"""The run dir: paths and remote I/O (rundir), the lock (runlock), the run log (runlog), checkpoints and the start
plan (checkpoint), generator versions (versions), their scores (scores) and stop signals (signals).

Imports downward only: pipeline/, train/archs/, and train's base modules (config, stages, strategy, tf_startup).
"""
