"""
C{gslb-import}: a NetScaler configuration's GSLB part as a gslb-twisted
topology.

  - L{lexer}: C{ns.conf} lines into commands (quoting, escapes, options
    matched without regard to case, CR LF);
  - L{mapping}: commands into a topology document, with every line that
    could not be imported as the NetScaler runs it listed by number;
  - L{rebase}: addresses moved into a lab network for emulation;
  - L{tomlwriter}: the document as deterministic TOML;
  - L{cli}: the command (C{main(argv)}).

docs/IMPORT.md describes the mapping.
"""

from .lexer import NSConfigError
from .mapping import ImportOptions, ImportResult, Note, importConfig

__all__ = ["NSConfigError", "ImportOptions", "ImportResult", "Note", "importConfig"]
