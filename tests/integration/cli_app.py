"""The app that the command-line tests load with ``-A``. It reads GENDURABLE_DATABASE_URL."""

from gendurable import App

app = App(include=())

# An attribute that is not an App, for the error of a wrong -A attribute.
not_an_app = 42
