//! What every trigger type shares: trigger ids (given, or generated and unique among the
//! triggers of that type) and the `component` reference (an id, or an inline component
//! that gets the generated id `<trigger id>-component`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;

use super::diag::Ctx;
use super::manifest::ComponentRef;
use super::resolve::resolve_component;
use super::{AppVariable, Component};

/// One id per trigger of `kind` (`http`, `redis`, `mqtt`): the `id` written in the
/// manifest, else `trigger-<component id>` (or `trigger-<index>` for an inline
/// component), made unique with a numeric suffix.
pub fn trigger_ids<'a>(
    ctx: &Ctx,
    kind: &str,
    triggers: impl Iterator<Item = (Option<&'a String>, Option<&'a ComponentRef>)> + Clone,
) -> Result<Vec<String>> {
    // Explicit ids first, so generated ids can steer clear of them.
    let mut used = BTreeSet::new();
    for (i, (id, _)) in triggers.clone().enumerate() {
        if let Some(id) = id {
            if id.is_empty() {
                return Err(ctx.err(
                    format_args!("trigger.{kind}[{i}]"),
                    "`id` must not be empty",
                ));
            }
            if !used.insert(id.clone()) {
                return Err(ctx.err(
                    format_args!("trigger.{kind}[{i}] (id {id:?})"),
                    "another trigger already has this id",
                ));
            }
        }
    }
    let mut ids = Vec::new();
    for (i, (id, component)) in triggers.enumerate() {
        let id = match id {
            Some(id) => id.clone(),
            None => {
                let base = match component {
                    Some(ComponentRef::Id(c)) => format!("trigger-{c}"),
                    _ => format!("trigger-{i}"),
                };
                let id = unique(&used, base, i);
                used.insert(id.clone());
                id
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

fn unique(used: &BTreeSet<String>, base: String, i: usize) -> String {
    if !used.contains(&base) {
        return base;
    }
    let mut n = i;
    loop {
        let candidate = format!("{base}-{n}");
        if !used.contains(&candidate) {
            return candidate;
        }
        n += 1;
    }
}

/// The id of the component trigger `trigger_id` (described by `place`) runs; an inline
/// component is resolved and added to `components`.
pub fn resolve_ref(
    ctx: &Ctx,
    place: &str,
    trigger_id: &str,
    component: ComponentRef,
    components: &mut BTreeMap<String, Component>,
    base_dir: &Path,
    variables: &BTreeMap<String, AppVariable>,
) -> Result<String> {
    match component {
        ComponentRef::Id(c) => {
            if !components.contains_key(&c) {
                return Err(ctx.err(
                    place,
                    format_args!("component {c:?} is not defined (no [component.{c}])"),
                ));
            }
            Ok(c)
        }
        ComponentRef::Inline(raw) => {
            let cid = format!("{trigger_id}-component");
            let cplace = format!("{place}: inline component");
            if components.contains_key(&cid) {
                return Err(ctx.err(
                    &cplace,
                    format_args!(
                        "its generated id {cid:?} clashes with [component.{cid}]; rename one of them"
                    ),
                ));
            }
            let c = resolve_component(ctx, &cplace, cid.clone(), *raw, base_dir, variables, true)?;
            components.insert(cid.clone(), c);
            Ok(cid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique() {
        let used: BTreeSet<String> = ["trigger-a".to_string(), "trigger-a-1".to_string()].into();
        assert_eq!(unique(&used, "trigger-b".into(), 1), "trigger-b");
        assert_eq!(unique(&used, "trigger-a".into(), 1), "trigger-a-2");
    }
}
