from setuptools import setup

setup(
    name="deepinside",
    version="0.1.0",
    description="Looking inside image-classification ConvNets: saliency, class models, "
                "GraphCut localisation and the DeconvNet/backprop equivalence "
                "(Simonyan, Vedaldi, Zisserman 2013), on a handwritten autodiff engine.",
    python_requires=">=3.10",
    packages=["engine", "kernels", "models", "viz"],
    package_data={"viz": ["samples/*.png"], "models": ["*.safetensors"]},
    install_requires=["numpy>=1.24", "scipy>=1.10", "safetensors>=0.4", "pillow>=10", "tqdm>=4.60",
                      "matplotlib>=3.7", "scikit-learn>=1.3", "PyMaxflow>=1.3", "onnx>=1.14",
                      "scikit-image>=0.22"],
    extras_require={
        # torch is a test-only oracle; the pinned CPU build lies on the build machines' disk.
        "test": ["pytest>=7", "pytest-benchmark>=4", "hypothesis>=6", "torch==2.13.0",
                 "nvidia-cuda-nvrtc==13.0.*"],  # NVRTC for the compile check of the CuPy path
        "gpu": ["cupy-cuda13x>=13"],
    },
    entry_points={"console_scripts": ["deepinside=viz.cli:main"]},
)
