"""Errors a user can cause, as types. Raised deep, rendered once at the CLI as one sentence."""


class ProfilingError(Exception):
    """Base class: ``str(err)`` is a complete sentence for the user."""


class ExportFormatError(ProfilingError):
    """The file is not a readable lab export (binary, empty, wrong encoding, truncated, …)."""


class MappingError(ProfilingError):
    """The mapping file, or the export's headers, do not say where a required field is."""


class LibraryError(ProfilingError):
    """The profile library cannot be used as asked."""


class LibraryLockedError(LibraryError):
    """Another process holds the library's write lock."""


class LibraryCorruptError(LibraryError):
    """The library's bytes fail their checksum or its structure is not what the schema says."""


class ConflictError(ProfilingError):
    """An exhibit id returns with different content and superseding was not asked for."""


class InputError(ProfilingError, ValueError):
    """An option or an argument the user gave cannot be used (bad period, rule, scheduler …)."""
