//! Network namespace topologies.
