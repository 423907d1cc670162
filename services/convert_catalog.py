"""Conversions for the FileCatalog messages (typed values and timestamps: services.convert)."""

from __future__ import annotations

from metaprod.core.errors import InvalidArgument
from metaprod.db.catalog import FileInput, FileRecord, Provenance
from metaprod.db.models import MetadataField
from metaprod.services.convert import MetaScalar, metadata_to_pb, timestamp
from metaprod.v1 import catalog_pb2


def field_to_pb(field: MetadataField) -> catalog_pb2.Field:
    return catalog_pb2.Field(name=field.name, type=field.type)


def file_input_from_pb(msg: catalog_pb2.CatalogFile) -> FileInput:
    """A file to register. Runs once per file of a bulk registration, hence the inlined
    typed-value unpacking (services.convert.metadata_from_pb does the same, one call deeper)."""
    metadata: dict[str, MetaScalar] = {}
    for key, value in msg.metadata.items():
        kind = value.WhichOneof("kind")
        if kind is None:
            raise InvalidArgument(f"file {msg.lfn!r}: metadata value of {key!r} is empty")
        metadata[key] = getattr(value, kind)
    return FileInput(lfn=msg.lfn, pfn=msg.pfn, size=msg.size, checksum=msg.checksum, metadata=metadata)


def provenance_to_pb(provenance: Provenance) -> catalog_pb2.Provenance:
    return catalog_pb2.Provenance(
        production=provenance.production,
        transformation=provenance.transformation,
        task=provenance.task,
        attempt=provenance.attempt,
        inputs=list(provenance.inputs),
        reused_from=provenance.reused_from or 0,
    )


def file_to_pb(record: FileRecord) -> catalog_pb2.CatalogFile:
    msg = catalog_pb2.CatalogFile(
        lfn=record.lfn,
        pfn=record.pfn,
        size=record.size,
        checksum=record.checksum,
        metadata=metadata_to_pb(record.metadata),
        created_at=timestamp(record.created_at),
        owner=record.owner or "",
    )
    if record.provenance is not None:
        msg.provenance.CopyFrom(provenance_to_pb(record.provenance))
        msg.has_provenance = True
    return msg
