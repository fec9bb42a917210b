"""What this package needs from Python 3.11, for Python 3.10 too.

The emulated Triton servers import the package inside Triton's Python backend, and the Triton
image (deploy/docker/triton.Dockerfile, tritonserver 24.10) runs Python 3.10, which has no
enum.StrEnum.
"""

from __future__ import annotations

import sys
from enum import Enum

if sys.version_info >= (3, 11):  # noqa: UP036 - the Triton image's Python is 3.10
    from enum import StrEnum
else:

    class StrEnum(str, Enum):  # noqa: UP042 - what enum.StrEnum is, where Python lacks it
        """enum.StrEnum of Python 3.11: members are strings, and str() is the value."""

        def __str__(self) -> str:
            return str(self.value)


__all__ = ["StrEnum"]
