"""Shared pytest setup: keep TensorFlow quiet and on the Keras TF backend in every test process."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Shared data fixtures (session-scoped, built once): a tiny GOPRO_Large-layout sample and its organized form.
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sample_raw(tmp_path_factory):
    """A synthetic GOPRO_Large tree: 4 scenes (3 train, 1 test) x 3 frames of 128x96, seed 0."""
    from pipeline.sample import write_sample

    raw = tmp_path_factory.mktemp("gopro") / "GOPRO_Large"
    write_sample(raw, scenes=4, frames=3, size=(128, 96), seed=0)
    return raw


@pytest.fixture(scope="session")
def organized_dir(sample_raw, tmp_path_factory):
    """`sample_raw` organized with copy mode: DIR/{train,test}/{A,B}/SCENE_FRAME.png + manifest.jsonl (9 + 3 pairs)."""
    from pipeline.config import OrganizeConfig
    from pipeline.organize import run

    out = tmp_path_factory.mktemp("organized") / "organized"
    run(OrganizeConfig(raw=str(sample_raw), out=str(out), blur="blur_gamma", link="copy"))
    return out
