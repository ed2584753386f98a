# Run (cmake -P) in place of the generator when the configured Python is absent.
message(FATAL_ERROR
  "parity: ${PY} not found. The whole-network PyTorch parity tests need Python 3 with "
  "torch, torchvision, onnx and numpy (Debian 12: apt-get install python3-torch "
  "python3-torchvision python3-onnx python3-numpy, as the README's install step does), "
  "or set -DMEDINFER_PARITY_PYTHON=/path/to/python3.")
