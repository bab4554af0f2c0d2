"""deepinside: looking inside image-classification ConvNets, as in Simonyan, Vedaldi and
Zisserman, "Deep Inside Convolutional Networks" (2013).

    from deepinside import engine, models, viz

The repository's top-level folders are this package's subpackages (setup.py maps them):
`kernels` (compute), `engine` (autodiff), `models` (networks and weight files), `viz` (the
paper's methods) and `cli` (the `deepinside` command). docs/DESIGN.md explains the layers.
"""
import importlib

__version__ = "0.1.0"
SUBPACKAGES = ("kernels", "engine", "models", "viz", "cli")


def __getattr__(name):
    """`deepinside.viz` and the others without an explicit import of each."""
    if name in SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'deepinside' has no attribute {name!r}")
