//! `whiskers_scores`: the whiskers demo's scoreboard (Spin SDK 7, HTTP).
//! `GET /scores` answers `{"cat":N,"dog":N,"rabbit":N,"chicken":N}` from the
//! counts `whiskers_tally` keeps in the default key-value store (missing is 0).

#[path = "../../animals.rs"]
mod animals;

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_service;
use spin_sdk::key_value::Store;

#[http_service]
async fn handle(request: Request) -> Response<String> {
    let (status, content_type, body) = if request.method() != Method::GET {
        (405, "text/plain", "scores take GET\n".to_string())
    } else {
        match scores().await {
            Ok(json) => (200, "application/json", json),
            Err(error) => (500, "text/plain", format!("{error}\n")),
        }
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        // Only fails for an invalid status or header, and all of those are fixed.
        .expect("valid response parts")
}

/// The JSON object of every animal's count (the names need no escaping).
async fn scores() -> Result<String, String> {
    let kv_error = |e| format!("default store: {e:?}");
    let store = Store::open_default().await.map_err(kv_error)?;
    let mut fields = Vec::new();
    for animal in animals::ANIMALS {
        let key = animals::tally_key(animal);
        let count = match store.get(&key).await.map_err(kv_error)? {
            None => 0,
            Some(value) => animals::parse_count(&value)
                .ok_or_else(|| format!("{key} does not hold a count"))?,
        };
        fields.push(format!("\"{animal}\":{count}"));
    }
    Ok(format!("{{{}}}", fields.join(",")))
}
