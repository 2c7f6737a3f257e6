"""The command-line commands: ``sr-toolkit train | eval | upscale | export | list``; ``tools/*.py`` call these."""
