//! exec: see DESIGN.md (being written).
