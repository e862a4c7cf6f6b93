"""``python -m manual_bp demo``."""

import sys

from manual_bp.cli import main

if __name__ == "__main__":
    sys.exit(main())
