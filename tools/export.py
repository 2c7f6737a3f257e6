"""Export a trained model to ONNX: ``python tools/export.py MODEL.safetensors --onnx model.onnx``.

Entry file kept for clones; the command lives in ``sr_toolkit.commands.export`` (also ``sr-toolkit export``).
"""

import sys

from sr_toolkit.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
