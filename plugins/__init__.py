"""sr-toolkit's first-party plugins, installed as ``sr_toolkit_plugins``: each subpackage is an entry point."""
