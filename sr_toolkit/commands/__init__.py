"""The commands ``sr-toolkit train | eval | upscale | export | list | schema``, each a module with
``main(argv) -> int`` that ``sr_toolkit.__main__`` dispatches to and ``tools/*.py`` call; their exit
statuses follow the one rule of ``exit_codes``."""
