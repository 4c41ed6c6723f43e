"""Training toolkit: datasets, xtuner (Q)LoRA config, train, merge, quantize, serve, GGUF export (`python -m training`)."""
