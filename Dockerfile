# GPU image for cloud VMs: gopro-prep and trainctl with TensorFlow's CUDA wheels (tensorflow[and-cuda]).
# Needs the NVIDIA driver and container toolkit on the host: `docker run --gpus all ...`.
#   docker build -t gopro-deblur .
#   docker run --gpus all -v "$PWD:/work" gopro-deblur train fit pipeline.yaml
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KERAS_BACKEND=tensorflow \
    KERAS_HOME=/opt/keras \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/gopro-deblur

# Dependencies first (cached layer), pinned by docker/constraints.txt.
COPY docker/constraints.txt docker/constraints.txt
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY train train
RUN pip install --no-cache-dir -c docker/constraints.txt ".[gpu]"

# VGG19 ImageNet weights baked in, so training never downloads at run time (perceptual_weights: imagenet).
RUN python -c "import keras; keras.applications.VGG19(include_top=False, weights='imagenet')" \
    && chmod -R a+rX /opt/keras

COPY docker/entrypoint.sh /usr/local/bin/gopro-entrypoint
RUN useradd --create-home --uid 1000 deblur \
    && mkdir -p /work \
    && chown deblur:deblur /work
USER 1000:1000
WORKDIR /work

ENTRYPOINT ["/usr/local/bin/gopro-entrypoint"]
CMD ["trainctl", "--help"]
