"""Release of the cohort: one directory others download, check and load without ecgcohort —
the packed Zarr store, a Parquet metadata table, its Croissant description, WFDB records, a
SHA-256 manifest (see :mod:`ecgcohort.release.build`)."""

from ecgcohort.release.build import (ReleaseInputs, ReleaseMetadata, VerifyReport, build_release, verify_release,
                                     write_manifest)
from ecgcohort.release.pack import pack_store, packed_dataset

__all__ = ["ReleaseInputs", "ReleaseMetadata", "VerifyReport", "build_release", "pack_store", "packed_dataset",
           "verify_release", "write_manifest"]
