"""A notebook-first deep-learning teaching library: a training loop built from scratch, then with PyTorch

Modules:

- `miniai.activations`: Reproducible seeds, PyTorch forward hooks, `Hooks` and `HooksCallback`, and the activation plots that tell a healthy training run from a sick one."""

__version__ = "0.0.1"
