//! Imports no capability implements, linked as functions that trap.
//!
//! SDK-built components import whole platform worlds (componentize-py's Spin
//! component imports 99 interfaces) but call few of them. Such a component
//! must load; only a call to a missing function fails, with a message naming
//! it. Interfaces the gateway provides are left alone.
//!
//! wasmtime's `Linker::define_unknown_imports_as_traps` is not used: in an
//! interface the gateway provides, it redefines a resource *alias* (e.g.
//! `type headers = fields` in `wasi:http/types@0.3.0`) as a new resource, which
//! then no longer matches the real one and the component fails to link.

use anyhow::Result;
use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceType};

use super::HostState;

/// WASI packages provided (through wasmtime-wasi) at every `0.2.x` and `0.3.0`.
const WASI_PACKAGES: &[&str] = &[
    "wasi:cli",
    "wasi:clocks",
    "wasi:filesystem",
    "wasi:http",
    "wasi:io",
    "wasi:random",
    "wasi:sockets",
];

/// Whether the gateway implements the interface `name` (`pkg:ns/iface@ver`):
/// WASI, or what a capability module says it implements.
fn is_provided(name: &str) -> bool {
    if super::capability_interfaces().any(|implemented| implemented == name) {
        return true;
    }
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let package = path.split('/').next().unwrap_or(path);
    WASI_PACKAGES.contains(&package) && (version.starts_with("0.2.") || version == "0.3.0")
}

/// Defines a trapping stub for every import of `component` that the gateway
/// does not provide.
pub fn stub_missing_imports(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    component: &Component,
) -> Result<()> {
    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        if is_provided(name) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let mut stubs = linker.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    stub_item(&mut stubs, name, export, &item.ty)?;
                }
            }
            ty => stub_item(&mut linker.root(), "", name, &ty)?,
        }
    }
    Ok(())
}

fn stub_item(
    linker: &mut LinkerInstance<'_, HostState>,
    interface: &str,
    name: &str,
    item: &ComponentItem,
) -> Result<()> {
    let message = if interface.is_empty() {
        format!("`{name}` is not implemented by gatewayd")
    } else {
        format!("`{interface}#{name}` is not implemented by gatewayd")
    };
    match item {
        ComponentItem::ComponentFunc(func) if func.async_() => {
            linker.func_new_concurrent(name, move |_, _, _, _| {
                let message = message.clone();
                Box::pin(async move { Err(wasmtime::Error::msg(message)) })
            })?;
        }
        ComponentItem::ComponentFunc(_) => {
            linker.func_new(name, move |_, _, _, _| {
                Err(wasmtime::Error::msg(message.clone()))
            })?;
        }
        // One host type for every stubbed resource: aliases of one resource
        // then agree, and no value of it can ever be made (its constructor traps).
        ComponentItem::Resource(_) => {
            linker.resource(name, ResourceType::host::<()>(), |_, _| Ok(()))?;
        }
        // Value types need no definition; nested instances and modules are not
        // imported by the toolchains we know.
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_provided;

    #[test]
    fn provided_interfaces_follow_wasi_versions() {
        assert!(is_provided("wasi:http/types@0.2.0"));
        assert!(is_provided("wasi:cli/environment@0.2.12"));
        assert!(is_provided("wasi:http/types@0.3.0"));
        assert!(!is_provided("wasi:cli/environment@0.3.0-rc-2026-03-15"));
        assert!(!is_provided("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(!is_provided("fermyon:spin/sqlite@2.0.0"));
        assert!(is_provided("fermyon:spin/variables@2.0.0"));
        assert!(is_provided("spin:variables/variables@3.0.0"));
        // Derived from the capability modules, not written here.
        for name in [
            "fermyon:spin/key-value@2.0.0",
            "spin:key-value/key-value@3.0.0",
            "fermyon:spin/redis@2.0.0",
            "spin:redis/redis@3.0.0",
            "fermyon:spin/mqtt@2.0.0",
            "spin:mqtt/mqtt@3.0.0",
        ] {
            assert!(is_provided(name), "{name}");
        }
        assert!(!is_provided("fermyon:spin/inbound-redis"));
    }
}
