"""From a trained run to a deployed model: HTTP serving, ONNX export, int8 quantization, explanations."""
