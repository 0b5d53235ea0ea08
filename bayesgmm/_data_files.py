"""Reading data files for the command line: CSV with an explicit header decision, ``.npy``.

Nothing here guesses silently: the header is decided by ``--header`` /
``--no-header`` or sniffed with the decision reported, and a row is never
dropped or invented.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

__all__ = ["read_data"]


_SEPARATORS = {";": "semicolons", "\t": "tabs", "|": "'|' characters"}


def read_data(path: str, columns: str | None = None, *, header: bool | None = None, note=None):
    """Read a CSV or ``.npy`` file into a float array (N, D) and its column names.

    ``header``: True if the first CSV row names the columns, False if it is data,
    None to decide from the row itself (a header has a cell that is neither empty
    nor a number); ``note``, if given, is called with a line saying what was
    decided. No row is ever dropped or invented: a blank line, a missing value,
    a text or true/false column, a header without data, a row of another length,
    duplicate names and a file separated by something other than commas each
    raise ``ValueError`` naming the file, the row (and line) and the column.
    """
    import pandas as pd

    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{path}: is a folder, not a data file")
    if not p.is_file():
        raise ValueError(f"{path}: no such file")
    if p.suffix == ".npy":
        if columns:
            raise ValueError("--columns applies to CSV files only")
        if header is not None:
            raise ValueError("--header/--no-header apply to CSV files only")
        try:
            X = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable .npy file ({err})") from None
        return np.asarray(X), None
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start}); "
            "save it as a UTF-8 CSV file"
        ) from None
    text = re.sub(r"(?:\r?\n[ \t]*)+\Z", "", text)  # blank lines at the end are no rows
    if not text.strip():
        raise ValueError(f"{path}: the file is empty")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    first = next(csv.reader([first_line]))
    if len(first) == 1:
        for sep, what in _SEPARATORS.items():
            if sep in first_line:
                raise ValueError(
                    f"{path}: the first line has no commas but {what}; bayesgmm reads "
                    "comma-separated files: convert it (e.g. pandas.read_csv(path, "
                    f"sep={sep!r}).to_csv(new_path, index=False))"
                )
    guessed = header is None
    if guessed:
        header = any(cell.strip() and not _is_number(cell) for cell in first)
    names = None
    if header:
        names = [cell.strip() for cell in first]
        if names and not names[-1] and len(names) > 1:
            raise ValueError(
                f"{path}: the header row ends with a comma (an unnamed last column); "
                "remove the trailing commas at the ends of the lines"
            )
        if "" in names:
            raise ValueError(f"{path}: header column {names.index('') + 1} has no name")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{path}: the header names column(s) {twice} more than once")
    try:
        df = pd.read_csv(
            io.StringIO(text),
            header=None,
            skiprows=1 if header else 0,
            skip_blank_lines=False,
            index_col=False,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path}: only a header row ({', '.join(names)}) and no data rows"
        ) from None
    except pd.errors.ParserError as err:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found:
            want, line, saw = found.groups()
            raise ValueError(
                f"{path}: line {line} has {saw} fields where the rows before it have {want} "
                "(a trailing comma, or a comma inside a value?)"
            ) from None
        raise ValueError(f"{path}: not a readable CSV file ({str(err).strip()})") from None
    if names is not None and len(names) != df.shape[1]:
        raise ValueError(
            f"{path}: the header has {len(names)} columns ({', '.join(names)}) but the data "
            f"rows have {df.shape[1]} (trailing commas at the ends of the data lines?)"
        )
    df.columns = names if names is not None else [str(i) for i in range(df.shape[1])]
    if guessed and note is not None:
        if header:
            note(
                f"{path}: read the first row as the header ({', '.join(names)}); "
                "pass --no-header if it is data"
            )
        else:
            note(
                f"{path}: the first row holds only numbers, so it is read as data (columns "
                f"named 0..{df.shape[1] - 1}); pass --header if it is a header"
            )
    offset = 2 if header else 1  # file line of data row 1

    if columns is not None:
        wanted = [c.strip() for c in columns.split(",")]
        if "" in wanted:
            raise ValueError(f"--columns {columns!r}: a column name is empty")
        twice = sorted({c for c in wanted if wanted.count(c) > 1})
        if twice:
            raise ValueError(f"--columns names {twice} more than once")
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing}; the file has {list(df.columns)}")
        df = df[wanted]
    empty = [c for c in df.columns if df[c].isna().all()]
    if empty:
        raise ValueError(
            f"{path}: column(s) {empty} are empty in every row (do the lines end with a "
            "trailing comma?); drop them, or choose columns with --columns"
        )
    blank = np.flatnonzero(df.isna().all(axis=1).to_numpy())
    if blank.size:
        row = int(blank[0]) + 1
        raise ValueError(
            f"{path}: data row {row} (line {row + offset - 1}) is blank "
            f"({blank.size} blank row(s) in all); remove the blank lines"
        )
    flags = [c for c in df.columns if pd.api.types.is_bool_dtype(df[c])]
    if flags:
        raise ValueError(
            f"{path}: column(s) {flags} hold true/false values, not numbers; choose numeric "
            "columns with --columns (or code them as 0/1)"
        )
    text_columns = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if text_columns:
        col = text_columns[0]
        values = pd.to_numeric(df[col], errors="coerce")
        bad = np.flatnonzero((values.isna() & df[col].notna()).to_numpy())
        where = ""
        if bad.size:
            row = int(bad[0]) + 1
            where = f"; data row {row} (line {row + offset - 1}) holds {df[col].iloc[row - 1]!r}"
        raise ValueError(
            f"{path}: column(s) {text_columns} are not numeric{where}; "
            "choose numeric columns with --columns"
        )
    if df.isna().any().any():
        row, col = np.argwhere(df.isna().to_numpy())[0]
        raise ValueError(
            f"{path}: missing value at data row {row + 1}, column {df.columns[col]!r} "
            f"(line {row + offset}; {int(df.isna().to_numpy().sum())} missing in all); "
            "impute or drop those rows"
        )
    return df.to_numpy(dtype=float), [str(c) for c in df.columns]


def _is_number(text) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
