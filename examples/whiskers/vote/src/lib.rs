//! `whiskers_vote`: the whiskers demo's front door (Spin SDK 7, HTTP).
//! `POST /vote/<animal>` (cat, dog, rabbit or chicken) publishes an empty
//! message to MQTT topic `whiskers/votes/<animal>` at QoS 1 on the broker in the
//! `mqtt_address` variable and answers 202 `vote for <animal> queued`; counting
//! is `whiskers_tally`'s job, triggered by that message.

#[allow(dead_code)] // only the list: counting is not this component's job
#[path = "../../animals.rs"]
mod animals;

use spin_sdk::http::{Method, Request, Response};
use spin_sdk::http_service;
use spin_sdk::mqtt::{Connection, Qos};

#[http_service]
async fn handle(request: Request) -> Response<String> {
    let (status, text) = vote(&request).await.unwrap_or_else(|failure| failure);
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(format!("{text}\n"))
        // Only fails for an invalid status or header, and all of those are fixed.
        .expect("valid response parts")
}

/// The status and text of the answer; `Err` for a vote that was not queued.
async fn vote(request: &Request) -> Result<(u16, String), (u16, String)> {
    // The route's `:animal`; the last path segment if a host leaves it out.
    let animal = request
        .headers()
        .get("spin-path-match-animal")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| request.uri().path().rsplit('/').next().unwrap_or(""));
    if !animals::ANIMALS.contains(&animal) {
        let known = animals::ANIMALS.join(", ");
        let text = format!("unknown animal {animal:?}: vote for one of {known}");
        return Err((400, text));
    }
    if request.method() != Method::POST {
        return Err((405, "a vote takes POST".to_string()));
    }
    let address = spin_sdk::variables::get("mqtt_address")
        .await
        .map_err(|e| (500, format!("variable mqtt_address: {e:?}")))?;
    let upstream = |e| (502, format!("could not queue the vote: {e:?}"));
    let conn = Connection::open(&address, "", "", 30)
        .await
        .map_err(upstream)?;
    let topic = format!("whiskers/votes/{animal}");
    conn.publish(topic, Vec::new(), Qos::AtLeastOnce)
        .await
        .map_err(upstream)?;
    Ok((202, format!("vote for {animal} queued")))
}
