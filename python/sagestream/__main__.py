"""``python -m sagestream`` runs the command line."""

import sys

from sagestream.cli import main

sys.exit(main())
