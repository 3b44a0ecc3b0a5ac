//! How an engine calls components: plainly, or through wasmtime's event loop
//! for the component model's async ABI (WASI 0.3).
//!
//! An engine with concurrency support runs every call, even one into a
//! WASI 0.2 component, inside `run_concurrent`, and gives every store the
//! event loop's state. A fresh instance per request pays for that: the hello
//! component's request made 176 allocations on such an engine and 123 on one
//! without. So each target has two engines, and a component is compiled for
//! the plain one whenever it can be: wasmtime refuses a component that uses
//! async features there, and such a component goes to the concurrent one.
//! The two make different code (wasmtime checks the setting when loading),
//! so the code cache keys them apart.

use std::fmt;

use wasmtime::Config;

/// The call style an engine (and the code it makes) is set up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// Plain calls, on a fiber: components that use none of the component
    /// model's async features (WASI 0.2, Spin SDK 5, wasi:http 0.2 tools).
    Plain,
    /// Calls through wasmtime's event loop: components built on the async
    /// ABI (WASI 0.3, Spin SDK 6 and 7, `async func` exports).
    Concurrent,
}

impl Calls {
    /// In order of preference.
    pub const ALL: [Calls; 2] = [Calls::Plain, Calls::Concurrent];

    /// Sets up `config` for this call style.
    pub fn configure(self, config: &mut Config) {
        let concurrent = self == Calls::Concurrent;
        config.wasm_component_model_async(concurrent);
        config.concurrency_support(concurrent);
    }
}

impl fmt::Display for Calls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Calls::Plain => "plain calls",
            Calls::Concurrent => "async calls",
        })
    }
}
