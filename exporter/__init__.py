"""The ONNX exporter (needs the [train] extra)."""
