//! kubemetrics-core: everything on the hot path that does not need Python.
//!
//! Data flow: `summary` (kubelet JSON) → `sample` (encoded NodeSample) → `store` (two points per
//! node and container, CPU rates) → `render` (metrics.k8s.io JSON). `selector` parses label
//! selectors for the API's `labelSelector` parameter.

pub mod error;
pub mod format;
pub mod render;
pub mod resource;
pub mod sample;
pub mod selector;
pub mod store;
pub mod summary;
