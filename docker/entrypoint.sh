#!/bin/sh
# Container entry point: `prep ...` / `gopro-prep ...` and `train ...` / `trainctl ...` run the two CLIs;
# anything else runs as given (e.g. `bash`).
set -e
case "${1:-}" in
  prep|gopro-prep) shift; exec gopro-prep "$@" ;;
  train|trainctl) shift; exec trainctl "$@" ;;
  "") exec trainctl --help ;;
  *) exec "$@" ;;
esac
