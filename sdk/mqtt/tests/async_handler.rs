//! Compiles an `async` handler through `#[mqtt_component]` on the host, which
//! checks the expansion against the generated bindings.

use gatewayd_mqtt_sdk::{Metadata, Payload, mqtt_component};

#[mqtt_component]
async fn handle_message(message: Payload, metadata: Metadata) -> Result<(), String> {
    match message.is_empty() {
        true => Err(format!("empty message on {}", metadata.topic)),
        false => Ok(()),
    }
}

#[test]
fn errors_become_error_other() {
    use gatewayd_mqtt_sdk::__private::into_wit_result;
    assert!(into_wit_result::<String>(Ok(())).is_ok());
    let error = into_wit_result(Err("boom")).unwrap_err();
    assert!(matches!(error, gatewayd_mqtt_sdk::bindings::Error::Other(text) if text == "boom"));
}
