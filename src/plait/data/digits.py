"""Kept for old imports: `plait.data.digits` now lives in `plait.datasets.digits`.

Data-set builders are not part of the data layer (which reads, validates and collates);
this module only re-exports the public names of their new home, so code written against
the old path keeps working.
"""

from plait.datasets.digits import *  # noqa: F403
from plait.datasets.digits import __all__  # noqa: F401
