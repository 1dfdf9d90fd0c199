"""gru-edge: train a character-level GRU, export it to ONNX, sample it anywhere."""

__version__ = "0.1.0"
