//! store: see DESIGN.md (being written).
