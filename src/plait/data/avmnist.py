"""Kept for old imports: `plait.data.avmnist` now lives in `plait.datasets.avmnist`.

Data-set builders are not part of the data layer (which reads, validates and collates);
this module only re-exports the public names of their new home, so code written against
the old path keeps working.
"""

from plait.datasets.avmnist import *  # noqa: F403
from plait.datasets.avmnist import __all__  # noqa: F401
