//! Variables: a component reads the values its manifest's `variables` map
//! gives it (`fermyon:spin/variables@2.0.0` for Spin SDK 5,
//! `spin:variables/variables@3.0.0` for SDK 6/7 and Python SDK 4/5).
//!
//! Values were resolved and rendered at load (see `app::variables`); an
//! instance holds a shared, read-only map of its component's values.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{Accessor, HasData, Linker};

use super::bindings::fermyon::spin::variables as v2;
use super::bindings::spin::variables::variables as v3;
use super::{Capability, Grantee, HostState};

/// One component's variables, by name.
#[derive(Clone, Default)]
pub struct Variables {
    values: Arc<BTreeMap<String, String>>,
}

impl Variables {
    fn new(values: BTreeMap<String, String>) -> Self {
        Self {
            values: Arc::new(values),
        }
    }

    fn get(&self, name: &str) -> Result<String, (ErrorKind, String)> {
        if !is_valid_name(name) {
            return Err((
                ErrorKind::InvalidName,
                format!("\"{name}\" is not a variable name (lower_snake_case)"),
            ));
        }
        self.values.get(name).cloned().ok_or_else(|| {
            (
                ErrorKind::Undefined,
                format!("no variable \"{name}\" in this component's manifest `variables`"),
            )
        })
    }
}

#[derive(Debug)]
enum ErrorKind {
    InvalidName,
    Undefined,
}

/// Spin's rule for variable names: a lowercase letter, then lowercase
/// letters, digits and single underscores.
fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

impl Capability for Variables {
    const INTERFACES: &'static [&'static str] = &[
        "fermyon:spin/variables@2.0.0",
        "spin:variables/variables@3.0.0",
    ];
    type Generation = ();

    fn grant(component: &Grantee<'_>, _: &Arc<()>) -> anyhow::Result<Self> {
        Ok(Self::new(component.spec.variables.clone()))
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
        v2::add_to_linker::<HostState, VariablesCapability>(linker, |state| {
            &mut state.grants.variables
        })
        .map_err(anyhow::Error::from)?;
        Ok(())
    }

    fn add_async_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
        v3::add_to_linker::<HostState, VariablesCapability>(linker, |state| {
            &mut state.grants.variables
        })
        .map_err(anyhow::Error::from)?;
        Ok(())
    }
}

/// The capability as the generated bindings see it: a view of the store
/// that is just the instance's [`Variables`].
struct VariablesCapability;

impl HasData for VariablesCapability {
    type Data<'a> = &'a mut Variables;
}

impl v2::Host for Variables {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(
            Variables::get(self, &name).map_err(|(kind, message)| match kind {
                ErrorKind::InvalidName => v2::Error::InvalidName(message),
                ErrorKind::Undefined => v2::Error::Undefined(message),
            }),
        )
    }
}

impl v3::Host for Variables {}

impl<T> v3::HostWithStore<T> for VariablesCapability {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, v3::Error> {
        let result = accessor.with(|mut access| access.get().get(&name));
        result.map_err(|(kind, message)| match kind {
            ErrorKind::InvalidName => v3::Error::InvalidName(message),
            ErrorKind::Undefined => v3::Error::Undefined(message),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lookups() {
        let vars = Variables::new(BTreeMap::from([("api_key".into(), "k".into())]));
        assert_eq!(vars.get("api_key").unwrap(), "k");
        assert!(matches!(
            vars.get("missing"),
            Err((ErrorKind::Undefined, _))
        ));
        for bad in ["Api", "9a", "a-b", "a__b", "a_", ""] {
            assert!(
                matches!(vars.get(bad), Err((ErrorKind::InvalidName, _))),
                "{bad}"
            );
        }
    }
}
