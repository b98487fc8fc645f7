//! layer: see DESIGN.md (being written).
