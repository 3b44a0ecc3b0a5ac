//! Rust bindings for the non-WASI interfaces gatewayd implements, generated
//! from the WIT in the repository's `wit/` folder.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gatewayd:host/host",
    imports: {
        // WASI 0.3 generation: async functions run with access to the store.
        "spin:variables/variables.get": async | store,
        default: trappable,
    },
});
