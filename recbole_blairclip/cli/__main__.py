"""``python -m recbole_blairclip.cli ...`` is the ``blairclip`` command."""
import sys

from recbole_blairclip.cli import main

sys.exit(main())
