"""One module per verb of `loon` and `build.py`; the CLI layers only parse flags."""
