"""Training toolkit: datasets, xtuner QLoRA config, merge, quantize, serve (`python -m training`)."""
