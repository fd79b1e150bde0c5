"""model layer of recbole_blairclip (see DESIGN.md for the layering)."""
