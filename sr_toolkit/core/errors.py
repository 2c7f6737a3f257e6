"""Exceptions that the entry points turn into one clear line for the user."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: what a
    one-line error quotes of a third-party exception."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class SrToolkitError(Exception):
    """Base of every error sr-toolkit raises on purpose: its message is meant for the user."""


class RegistryError(SrToolkitError):
    """An unknown component name, a duplicate registration or a bad build argument."""


class PluginError(SrToolkitError):
    """A plugin module or entry point that could not be imported."""


class RecipeError(SrToolkitError):
    """A recipe that cannot be read, merged or validated."""


class DataError(SrToolkitError):
    """Input data that cannot be used: missing folder, no usable image, unreadable file."""


class TrainingDiverged(SrToolkitError):
    """The training loss became NaN or infinite."""
