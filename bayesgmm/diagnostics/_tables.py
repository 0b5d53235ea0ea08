"""Tables that print compactly: imported on first use, so that pandas loads only then."""

from __future__ import annotations

import pandas as pd

__all__ = ["EMvsPosteriorTable"]


class EMvsPosteriorTable(pd.DataFrame):
    """:func:`em_vs_posterior`'s table: a DataFrame that prints compactly.

    Every column is shown (none hidden behind ``...``) and numbers are
    rounded to four significant digits, in a terminal and in a notebook;
    the values themselves are not rounded. Selections and other operations
    return plain DataFrames.
    """

    @property
    def _constructor(self):
        return pd.DataFrame

    def _display(self):
        return pd.option_context(
            "display.float_format",
            "{:.4g}".format,
            "display.max_columns",
            None,
            "display.width",
            200,
        )

    def __repr__(self) -> str:
        with self._display():
            return pd.DataFrame.__repr__(pd.DataFrame(self))

    def _repr_html_(self) -> str:
        with self._display():
            return pd.DataFrame(self)._repr_html_()
