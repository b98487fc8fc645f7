//! plan: see DESIGN.md (being written).
