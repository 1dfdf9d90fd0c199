"""The edge runtime: numpy + onnxruntime + the standard library only (never TensorFlow)."""
