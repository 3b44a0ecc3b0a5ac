//! Rust bindings for the non-WASI interfaces gatewayd implements, generated
//! from the WIT in the repository's `wit/` folder.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "gatewayd:host/host",
    imports: {
        // WASI 0.3 generation: async functions run with access to the store.
        "spin:variables/variables.get": async | store,
        "spin:key-value/key-value.[static]store.open": async | store,
        "spin:key-value/key-value.[method]store.get": async | store,
        "spin:key-value/key-value.[method]store.set": async | store,
        "spin:key-value/key-value.[method]store.delete": async | store,
        "spin:key-value/key-value.[method]store.exists": async | store,
        "spin:key-value/key-value.[method]store.get-keys": async | store | trappable,
        "spin:key-value/key-value.[drop]store": trappable,
        "spin:redis/redis.[static]connection.open": async | store,
        "spin:redis/redis.[method]connection.publish": async | store,
        "spin:redis/redis.[method]connection.get": async | store,
        "spin:redis/redis.[method]connection.set": async | store,
        "spin:redis/redis.[method]connection.incr": async | store,
        "spin:redis/redis.[method]connection.del": async | store,
        "spin:redis/redis.[method]connection.sadd": async | store,
        "spin:redis/redis.[method]connection.smembers": async | store,
        "spin:redis/redis.[method]connection.srem": async | store,
        "spin:redis/redis.[method]connection.execute": async | store,
        "spin:redis/redis.[drop]connection": trappable,
        "spin:mqtt/mqtt.[static]connection.open": async | store,
        "spin:mqtt/mqtt.[method]connection.publish": async | store,
        "spin:mqtt/mqtt.[drop]connection": trappable,
        // WASI 0.2 generation: blocking to the guest, async on the host, so
        // a store waiting for its disk does not stall a serving thread.
        default: async | trappable,
    },
    with: {
        "fermyon:spin/key-value.store": crate::host::key_value::OpenStore,
        "spin:key-value/key-value.store": crate::host::key_value::OpenStore,
        "fermyon:spin/redis.connection": crate::host::redis::RedisConnection,
        "spin:redis/redis.connection": crate::host::redis::RedisConnection,
        "fermyon:spin/mqtt.connection": crate::host::mqtt::MqttConnection,
        "spin:mqtt/mqtt.connection": crate::host::mqtt::MqttConnection,
    },
});
