"""tokenmix: token mixers for the CPU (selective scan, SSD, sparse / neighborhood / linear attention,
hybrid blocks) on NumPy float32 arrays.

Every operator takes the C++ argument names as keywords and NumPy arrays (float32, C order; other real
dtypes and orders are converted) and returns new float32 arrays; `threads=` runs it on a thread pool;
the GIL is released while it computes. Shapes are token-major, channels last (see each docstring).
"""

from ._tokenmix import *  # noqa: F401,F403
from ._tokenmix import __version__  # noqa: F401
