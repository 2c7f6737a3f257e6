"""Train a model from a recipe: ``accelerate launch tools/train.py RECIPE [key.path=value ...]``.

Entry file kept for clones; the command lives in ``sr_toolkit.commands.train`` (also ``sr-toolkit train``).
"""

import sys

from sr_toolkit.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
