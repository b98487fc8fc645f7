//! sandbox: see DESIGN.md (being written).
