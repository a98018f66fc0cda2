"""An app module whose own import fails: it imports a module that does not exist."""

import importlib

importlib.import_module(f"{__package__}.cli_broken")
