//! TODO(skeleton): filled in by the module's implementation.
