"""``msp lake check``: does every table's catalog entry name its newest commit, and are its files there?

A commit writes a new metadata file (``<version>-<uuid>.metadata.json``, the version one above the file it
replaces) and then swaps the catalog's pointer to it. Three things can be wrong afterwards, and each is
found here without changing anything:

* **ahead**: a metadata file with a higher version than the one the catalog names. A writer wrote it and
  its pointer swap never landed: the process was killed between the two steps (harmless, the previous
  snapshot stands and ``msp lake maintain`` removes the file), or the swap was lost after it reported
  success, which loses that commit's rows. A writer that lost a compare-and-swap to another leaves a file
  of the same version as the winner's, not a higher one, so it is not reported. Rerunning the days of the
  table's last run makes it whole either way (stages replace what they own).
* **missing data**: a data file the current snapshot lists is not in storage: its rows cannot be read.
* **unreadable**: the current metadata file cannot be read or parsed.

pyiceberg has no such check (``Table.inspect`` reads what the metadata lists, never what else is there), so
this module lists the metadata folder itself.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

if TYPE_CHECKING:  # pragma: no cover
    from lakehouse.lake import Lake
    from schemas import Dataset

_VERSION = re.compile(r"^(\d+)-.*\.metadata\.json$")


@dataclass(frozen=True)
class Finding:
    table: str
    kind: str  # ahead | missing data | unreadable
    detail: str


def metadata_version(path: str) -> int | None:
    """The version in a metadata file's name (``00012-<uuid>.metadata.json`` → 12), None for another name."""
    m = _VERSION.match(posixpath.basename(path))
    return int(m.group(1)) if m else None


def check_table(lake: Lake, ds: Dataset, data_files: bool = True) -> list[Finding]:
    """The findings of one table (none for a table never created)."""
    name = ds.qualified_name
    try:
        tbl = lake._load(ds)
    except Exception as exc:  # Lake._load names the table and what to do
        return [Finding(name, "unreadable", str(exc))]
    if tbl is None:
        return []
    out: list[Finding] = []
    current = metadata_version(tbl.metadata_location)
    folder = lake._fs_path(posixpath.dirname(tbl.metadata_location))
    try:
        infos = lake.fs.get_file_info(pafs.FileSelector(folder))
    except FileNotFoundError:
        infos = []
    ahead = sorted((v, posixpath.basename(i.path)) for i in infos
                   if (v := metadata_version(i.path)) is not None and current is not None and v > current)
    if ahead:
        out.append(Finding(name, "ahead", f"the catalog names version {current}, the folder also holds "
                           + ", ".join(f for _v, f in ahead)
                           + ": a commit whose catalog swap did not land (rerun the table's last days)"))
    if data_files:
        paths = [lake._fs_path(p) for p in lake.files(ds)]
        missing = [i.path for i in lake.fs.get_file_info(paths) if i.type == pafs.FileType.NotFound] if paths else []
        if missing:
            out.append(Finding(name, "missing data", f"{len(missing)} of {len(paths)} data file(s) of the current "
                               f"snapshot are not in storage, e.g. {missing[0]}"))
    return out


def check(lake: Lake, datasets: list[Dataset], data_files: bool = True) -> list[Finding]:
    """The findings of every table given, in their order."""
    return [f for ds in datasets for f in check_table(lake, ds, data_files)]
