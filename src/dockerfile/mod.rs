//! dockerfile: see DESIGN.md (being written).
