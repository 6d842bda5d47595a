//! `kubemetrics._native`: the thin PyO3 layer over kubemetrics-core.
//!
//! Every function that touches a payload or the store detaches from the interpreter while it works,
//! so the asyncio loop's other threads (gRPC) keep running.

use pyo3::prelude::*;

mod decode;
mod store;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    decode::register(m)?;
    store::register(m)?;
    Ok(())
}
