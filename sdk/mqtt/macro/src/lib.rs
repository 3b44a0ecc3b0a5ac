//! `gatewayd_mqtt_sdk_macro`: the `#[mqtt_component]` attribute, re-exported by
//! `gatewayd_mqtt_sdk`. Owns checking the handler's signature and expanding it
//! into an implementation of the world's `Guest` trait plus the export macro
//! call; the bindings themselves live in `gatewayd_mqtt_sdk`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, FnArg, ItemFn, ReturnType, Signature};

/// Makes the function the component's `handle-message` export.
///
/// The function takes the payload and the metadata and returns a `Result<(), E>`
/// whose error implements `Display` (usually `anyhow::Result<()>`); it may be
/// `async`. An `Err(e)` reaches the host as `error::other(format!("{e:#}"))`, which keeps an
/// `anyhow` error's causes.
///
/// ```ignore
/// use gatewayd_mqtt_sdk::{mqtt_component, Metadata, Payload};
///
/// #[mqtt_component]
/// async fn handle_message(message: Payload, metadata: Metadata) -> anyhow::Result<()> {
///     println!("{} bytes on {}", message.len(), metadata.topic);
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn mqtt_component(
    attr: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    let func = syn::parse_macro_input!(item as ItemFn);
    expand(attr.into(), func)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

const EXPECTED: &str = "expected `fn(message: Payload, metadata: Metadata) -> anyhow::Result<()>` (optionally `async`)";

fn expand(attr: TokenStream, func: ItemFn) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(Error::new_spanned(
            attr,
            "`#[mqtt_component]` takes no arguments",
        ));
    }
    check(&func.sig)?;
    let name = &func.sig.ident;
    let await_ = func.sig.asyncness.map(|_| quote!(.await));
    // Spanned on the return type, so a wrong type is reported at the user's code.
    let call = quote_spanned! {func.sig.output.span()=>
        ::gatewayd_mqtt_sdk::__private::into_wit_result(super::#name(message, metadata) #await_)
    };
    Ok(quote! {
        #func

        #[doc(hidden)]
        mod __gatewayd_mqtt_component {
            struct Component;

            impl ::gatewayd_mqtt_sdk::bindings::Guest for Component {
                async fn handle_message(
                    message: ::gatewayd_mqtt_sdk::Payload,
                    metadata: ::gatewayd_mqtt_sdk::Metadata,
                ) -> ::core::result::Result<(), ::gatewayd_mqtt_sdk::bindings::Error> {
                    #call
                }
            }

            ::gatewayd_mqtt_sdk::bindings::__export_spin_mqtt!(Component);
        }
    })
}

/// Rejects what the expansion cannot call as `name(message, metadata)`; the
/// argument and return types are left to the compiler at the call site.
fn check(sig: &Signature) -> syn::Result<()> {
    let fail = |tokens: &dyn quote::ToTokens, what: &str| {
        Err(Error::new_spanned(
            tokens,
            format!("`#[mqtt_component]` {what}: {EXPECTED}"),
        ))
    };
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return fail(&sig.generics, "function cannot be generic");
    }
    if let Some(variadic) = &sig.variadic {
        return fail(variadic, "function cannot be variadic");
    }
    if let Some(abi) = &sig.abi {
        return fail(abi, "function cannot have an ABI");
    }
    if let Some(receiver) = sig
        .inputs
        .iter()
        .find(|arg| matches!(arg, FnArg::Receiver(_)))
    {
        return fail(receiver, "function cannot take `self`");
    }
    if sig.inputs.len() != 2 {
        let what = "function takes exactly two arguments";
        return match sig.inputs.is_empty() {
            true => fail(&sig.ident, what),
            false => fail(&sig.inputs, what),
        };
    }
    if let ReturnType::Default = sig.output {
        return fail(&sig.ident, "function must return a `Result`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn message(func: ItemFn) -> String {
        expand(TokenStream::new(), func).unwrap_err().to_string()
    }

    #[test]
    fn accepts_async_and_sync_handlers() {
        let ok: [ItemFn; 2] = [
            parse_quote!(
                async fn h(m: Payload, md: Metadata) -> anyhow::Result<()> {
                    Ok(())
                }
            ),
            parse_quote!(
                fn h(m: Payload, md: Metadata) -> Result<(), String> {
                    Ok(())
                }
            ),
        ];
        for func in ok {
            let out = expand(TokenStream::new(), func).unwrap().to_string();
            assert!(out.contains("__export_spin_mqtt"), "{out}");
        }
    }

    #[test]
    fn rejects_other_signatures() {
        let cases: [(ItemFn, &str); 5] = [
            (
                parse_quote!(
                    async fn h(m: Payload) -> anyhow::Result<()> {
                        Ok(())
                    }
                ),
                "exactly two arguments",
            ),
            (
                parse_quote!(
                    fn h() -> anyhow::Result<()> {
                        Ok(())
                    }
                ),
                "exactly two arguments",
            ),
            (
                parse_quote!(
                    async fn h(m: Payload, md: Metadata) {}
                ),
                "must return",
            ),
            (
                parse_quote!(
                    fn h<T>(m: T, md: Metadata) -> Result<(), String> {
                        Ok(())
                    }
                ),
                "generic",
            ),
            (
                parse_quote!(
                    fn h(&self, md: Metadata) -> Result<(), String> {
                        Ok(())
                    }
                ),
                "`self`",
            ),
        ];
        for (func, expected) in cases {
            let error = message(func);
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("Payload"), "{error}");
        }
    }

    #[test]
    fn rejects_arguments() {
        let func: ItemFn = parse_quote!(
            fn h(m: Payload, md: Metadata) -> Result<(), String> {
                Ok(())
            }
        );
        let error = expand(quote!(topic = "x"), func).unwrap_err().to_string();
        assert!(error.contains("takes no arguments"), "{error}");
    }
}
