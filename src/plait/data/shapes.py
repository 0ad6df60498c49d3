"""Kept for old imports: `plait.data.shapes` now lives in `plait.datasets.shapes`.

Data-set builders are not part of the data layer (which reads, validates and collates);
this module only re-exports the public names of their new home, so code written against
the old path keeps working.
"""

from plait.datasets.shapes import *  # noqa: F403
from plait.datasets.shapes import __all__  # noqa: F401
