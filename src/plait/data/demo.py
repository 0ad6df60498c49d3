"""Kept for old imports: `plait.data.demo` now lives in `plait.datasets.demo`.

Data-set builders are not part of the data layer (which reads, validates and collates);
this module only re-exports the public names of their new home, so code written against
the old path keeps working.
"""

from plait.datasets.demo import *  # noqa: F403
from plait.datasets.demo import __all__  # noqa: F401
