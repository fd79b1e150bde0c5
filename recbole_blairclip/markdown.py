"""Markdown pipe tables from pandas (``DataFrame.to_markdown``, i.e. tabulate's pipe format), shared by the
benchmark report and the tune report."""


def markdown_table(columns, text_columns=1):
    """``columns``: {header: cells}; the first ``text_columns`` columns (or those named in a tuple)
    left-aligned, the others right-aligned; cells are shown as given (``|`` escaped)."""
    import pandas as pd

    frame = pd.DataFrame({name: [str(c).replace("|", "\\|") for c in cells] for name, cells in columns.items()})
    left = set(frame.columns[:text_columns]) if isinstance(text_columns, int) else set(text_columns)
    align = ["left" if name in left else "right" for name in frame.columns]
    return frame.to_markdown(index=False, colalign=align, disable_numparse=True)
