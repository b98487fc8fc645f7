//! .dockerignore matching (being written).
