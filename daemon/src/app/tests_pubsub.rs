//! Manifest tests of the Redis and MQTT triggers: defaults, fallbacks, and an
//! error naming the place for every kind of bad value.

use std::time::Duration;

use super::tests::{load_err, load_ok, with_head};

const COMPONENT: &str = "[component.c]\nsource = \"c.wasm\"\n";

#[test]
fn redis_triggers_fall_back_on_the_app_address() {
    let (app, _dir) = load_ok(
        &with_head(&format!(
            r#"
[application.trigger.redis]
address = "redis://127.0.0.1:6379"
[[trigger.redis]]
channel = "a"
component = "c"
[[trigger.redis]]
id = "own"
channel = "b"
component = "c"
address = "redis://other:6380/1"
concurrency = 8
max_attempts = 1
dead_letter_channel = "dead"
{COMPONENT}"#
        )),
        &["c.wasm"],
    );
    let [a, b] = &app.redis_triggers[..] else {
        panic!("{:?}", app.redis_triggers)
    };
    assert_eq!(a.id, "trigger-c");
    assert_eq!(a.address, "redis://127.0.0.1:6379");
    assert_eq!(a.delivery, super::Delivery::default());
    assert_eq!(a.dead_letter_channel, None);
    assert_eq!(b.id, "own");
    assert_eq!(b.address, "redis://other:6380/1");
    assert_eq!(b.delivery.concurrency, 8);
    assert_eq!(b.delivery.max_attempts, 1);
    assert_eq!(b.dead_letter_channel.as_deref(), Some("dead"));
}

#[test]
fn mqtt_triggers_with_the_plugin_keys() {
    let (app, _dir) = load_ok(
        &with_head(&format!(
            r##"
[application.trigger.mqtt]
address = "mqtt://broker:1883"
username = "user"
password = "{{{{ pw }}}}"
keep_alive_interval = "15"
[variables]
pw = {{ default = "x", secret = true }}
[[trigger.mqtt]]
component = "c"
topic = "sensors/+/temp"
qos = "1"
[[trigger.mqtt]]
id = "all"
component = "c"
topic = "#"
qos = 2
dead_letter_topic = "dead/all"
{COMPONENT}"##
        )),
        &["c.wasm"],
    );
    let broker = app.mqtt_broker.as_ref().unwrap();
    assert_eq!(broker.address, "mqtt://broker:1883");
    assert_eq!(broker.password, "{{ pw }}");
    assert_eq!(broker.keep_alive, Duration::from_secs(15));
    assert_eq!(broker.client_id, "gatewayd-demo");
    assert_eq!(app.mqtt_triggers[0].qos, 1);
    assert_eq!(app.mqtt_triggers[0].id, "trigger-c");
    assert_eq!(app.mqtt_triggers[1].qos, 2);
    assert_eq!(
        app.mqtt_triggers[1].dead_letter_topic.as_deref(),
        Some("dead/all")
    );
}

#[test]
fn bad_pubsub_settings_are_named() {
    let mqtt = |app: &str, trigger: &str| {
        load_err(
            &with_head(&format!(
                "[application.trigger.mqtt]\n{app}\n[[trigger.mqtt]]\ncomponent = \"c\"\n{trigger}\n{COMPONENT}"
            )),
            &["c.wasm"],
        )
    };
    let ok_app = "address = \"mqtt://h:1883\"";
    let cases = [
        (
            mqtt(ok_app, "topic = \"a/#/b\"\nqos = \"1\""),
            "trigger.mqtt[0] (id \"trigger-c\"): topic \"a/#/b\": `#` must be a whole level",
        ),
        (
            mqtt(ok_app, "topic = \"a\"\nqos = \"3\""),
            "trigger.mqtt[0] (id \"trigger-c\"): qos = \"3\": must be \"0\", \"1\" or \"2\"",
        ),
        (mqtt(ok_app, "topic = \"a\""), "`qos` is missing"),
        (
            mqtt("address = \"tcp://h\"", "topic = \"a\"\nqos = \"0\""),
            "application.trigger.mqtt: address \"tcp://h\": expected an mqtt://host:port or mqtts://host:port address",
        ),
        (
            mqtt(
                &format!("{ok_app}\nkeep_alive_interval = \"0\""),
                "topic = \"a\"\nqos = \"0\"",
            ),
            "keep_alive_interval = \"0\": must be a number of seconds",
        ),
        (
            mqtt(ok_app, "topic = \"a\"\nqos = \"1\"\nconcurrency = 0"),
            "concurrency = 0: must be between 1 and 1024",
        ),
        (
            mqtt(
                ok_app,
                "topic = \"a\"\nqos = \"1\"\ndead_letter_topic = \"d/#\"",
            ),
            "dead_letter_topic \"d/#\": a topic to publish on cannot hold the wildcards",
        ),
        (
            mqtt(ok_app, "topic = \"{{ nope }}\"\nqos = \"1\""),
            "references undeclared variable \"nope\"",
        ),
        (
            mqtt(ok_app, "topic = \"a\"\nqos = \"1\"\nretries = 3"),
            "unknown field `retries`",
        ),
        (
            load_err(
                &with_head(&format!(
                    "[[trigger.mqtt]]\ncomponent = \"c\"\ntopic = \"a\"\nqos = \"1\"\n{COMPONENT}"
                )),
                &["c.wasm"],
            ),
            "trigger.mqtt: MQTT triggers need an [application.trigger.mqtt] table",
        ),
        (
            load_err(
                &with_head(&format!(
                    "[[trigger.redis]]\nchannel = \"a\"\ncomponent = \"c\"\n{COMPONENT}"
                )),
                &["c.wasm"],
            ),
            "trigger.redis[0] (id \"trigger-c\"): no `address`",
        ),
        (
            load_err(
                &with_head(&format!(
                    "[[trigger.redis]]\nchannel = \"a\"\ncomponent = \"c\"\naddress = \"redis//h\"\n{COMPONENT}"
                )),
                &["c.wasm"],
            ),
            "address \"redis//h\"",
        ),
        (
            load_err(
                &with_head(&format!(
                    "[[trigger.redis]]\nchannel = \"a\"\ncomponent = \"nope\"\naddress = \"redis://h\"\n{COMPONENT}"
                )),
                &["c.wasm"],
            ),
            "component \"nope\" is not defined",
        ),
        (
            load_err(
                &with_head(&format!("[[trigger.cron]]\ncomponent = \"c\"\n{COMPONENT}")),
                &["c.wasm"],
            ),
            "trigger.cron: trigger type \"cron\" is not supported",
        ),
    ];
    for (err, expected) in cases {
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
}
