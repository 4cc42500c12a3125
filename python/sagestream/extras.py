"""What to install for the parts of sagestream that need more than the boto stack.

``pip install sagestream`` brings boto3 and botocore only: the clients need nothing else. The
local endpoint emulator (``sagestream serve``, ``sagestream demo``, :mod:`sagestream.emulator`)
needs the ``serve`` extra; each message that names a missing package names the extra too.
"""

from __future__ import annotations

__all__ = ["SERVE_INSTALL"]

#: The command that installs the emulator's packages (aiohttp, h2, moto's S3 server, cryptography).
SERVE_INSTALL = "pip install 'sagestream[serve]'"
