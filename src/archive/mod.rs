//! archive: see DESIGN.md (being written).
