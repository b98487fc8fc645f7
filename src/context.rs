//! build context walking (being written).
