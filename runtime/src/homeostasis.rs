//! The `homeostasis` module: SLOs, health, actuations (being written).
