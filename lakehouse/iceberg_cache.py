"""pyiceberg's SQL catalog, keeping the table metadata it has parsed.

An Iceberg metadata file is never changed once written: a commit writes a new file and points the catalog at
it. So a table whose catalog entry still names a file this process has parsed is served from that parse, and
"has this table changed?" (asked before and after every stage, for every table it reads or writes) costs one
catalog query instead of reading and validating a JSON file that grows with the table's snapshots.
pyiceberg's ``table_exists`` loads the whole table too; here it asks the catalog only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.table import Table
from sqlalchemy import select

#: Parsed metadata files kept per process (a lake has ~130 tables; a run touches each a few times).
KEEP = 1024


class CachingSqlCatalog(SqlCatalog):
    """:class:`~pyiceberg.catalog.sql.SqlCatalog` with a cache of parsed metadata files (see the module doc)."""

    def __init__(self, name: str, **properties: Any):
        super().__init__(name, **properties)
        self._parsed: OrderedDict[str, Any] = OrderedDict()
        self._parsed_lock = threading.Lock()

    def _convert_orm_to_iceberg(self, orm_table: IcebergTables) -> Table:
        location = orm_table.metadata_location
        cached = self._cached(orm_table.table_namespace, orm_table.table_name, location)
        if cached is not None:
            return cached
        table = super()._convert_orm_to_iceberg(orm_table)
        with self._parsed_lock:
            self._parsed[location] = table.metadata
            while len(self._parsed) > KEEP:
                self._parsed.popitem(last=False)
        return table

    def _cached(self, namespace: str, name: str, location: str | None) -> Table | None:
        """The table from the parsed metadata file at ``location``, if this process has parsed it."""
        with self._parsed_lock:
            metadata = self._parsed.get(location) if location else None
            if metadata is not None:
                self._parsed.move_to_end(location)
        if metadata is None:
            return None
        return Table(identifier=(*Catalog.identifier_to_tuple(namespace), name), metadata=metadata,
                     metadata_location=location, io=self._load_file_io(metadata.properties, location), catalog=self)

    @staticmethod
    def _key(identifier: str | tuple[str, ...]) -> tuple[str, str]:
        """(namespace, name) of a table as the catalog's rows hold them."""
        return Catalog.namespace_to_string(Catalog.namespace_from(identifier)), Catalog.table_name_from(identifier)

    def _location(self, identifier: str | tuple[str, ...]) -> tuple[str, str, str | None] | None:
        """(namespace, name, metadata location) of a table, from one core query (None: no such table)."""
        namespace, name = self._key(identifier)
        stmt = select(IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == self.name, IcebergTables.table_namespace == namespace,
            IcebergTables.table_name == name)
        if (type_filter := self._iceberg_type_filter()) is not None:
            stmt = stmt.where(type_filter)
        with self.engine.connect() as con:
            row = con.execute(stmt).first()
        return None if row is None else (namespace, name, row[0])

    def load_table(self, identifier: str | tuple[str, ...]) -> Table:
        found = self._location(identifier)
        if found is None:
            return super().load_table(identifier)  # pyiceberg's own error for a missing table
        cached = self._cached(*found)
        if cached is not None:
            return cached
        return super().load_table(identifier)

    def metadata_locations(self) -> dict[tuple[str, str], str | None]:
        """Every table's current metadata file, by (namespace, name), from one query: a table whose entry
        names the same file as before has not changed (the analysts' catalog refreshes only the others)."""
        stmt = select(IcebergTables.table_namespace, IcebergTables.table_name, IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == self.name)
        if (type_filter := self._iceberg_type_filter()) is not None:
            stmt = stmt.where(type_filter)
        with self.engine.connect() as con:
            return {(namespace, name): location for namespace, name, location in con.execute(stmt)}

    def current_snapshot_ids(self, identifiers: list[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        """The current snapshot id of each table whose answer needs no file read, from one catalog query: a
        table the catalog lacks (None), or one whose metadata file this process has parsed. The others are
        left out (the caller loads them)."""
        locations = self.metadata_locations()
        out: dict[tuple[str, str], int | None] = {}
        with self._parsed_lock:
            for ident in identifiers:
                key = self._key(ident)
                if key not in locations:
                    out[ident] = None
                elif (metadata := self._parsed.get(locations[key] or "")) is not None:
                    out[ident] = metadata.current_snapshot_id
        return out

    def table_exists(self, identifier: str | tuple[str, ...]) -> bool:
        return self._location(identifier) is not None
