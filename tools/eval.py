"""Score models and interpolation baselines on a folder of clean images, as SR papers do.

Entry file kept for clones; the command lives in ``sr_toolkit.commands.eval`` (also ``sr-toolkit eval``).
"""

import sys

from sr_toolkit.commands.eval import main

if __name__ == "__main__":
    sys.exit(main())
