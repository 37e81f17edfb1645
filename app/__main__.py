"""``python -m app`` is ``hitl``."""

import sys

from app.cli import main

sys.exit(main())
