"""Data-set builders: generated demo data and benchmarks built from original files.

- `plait.datasets.demo`: the fusion demo (each label factor in one modality).
- `plait.datasets.shapes`: the retrieval demo (one concept in every modality).
- `plait.datasets.avmnist`: AV-MNIST from the original MNIST and FSDD files.
- `plait.datasets.digits`: spoken, handwritten and written digits for alignment.

They write manifests and files that the data layer (`plait.data`) then reads like any
user's data; nothing in `plait.data` imports them. Submodules are imported on use, so
importing the package costs nothing.
"""
