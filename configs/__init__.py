"""Run configs, benchmark configs and Ray Tune spaces, shipped as package data ``recbole_blairclip.configs``
(pyproject.toml maps this folder into the package; see ``recbole_blairclip/packaged.py``)."""
