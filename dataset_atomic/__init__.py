"""The bundled sample datasets, shipped as package data ``recbole_blairclip.sample_data`` (pyproject.toml maps this
folder into the package; see ``recbole_blairclip/packaged.py``). Converted datasets of your own also live here."""
