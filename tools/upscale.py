"""Upscale or restore images with a trained model: ``python tools/upscale.py MODEL INPUT... --out DIR``.

Entry file kept for clones; the command lives in ``sr_toolkit.commands.upscale`` (also ``sr-toolkit upscale``).
"""

import sys

from sr_toolkit.commands.upscale import main

if __name__ == "__main__":
    sys.exit(main())
