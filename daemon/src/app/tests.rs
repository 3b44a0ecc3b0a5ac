//! Tests of `load` as a whole: manifest text and files on disk in, `App` or error out.

use std::fs;
use std::path::Path;

use super::*;

const HEAD: &str = "spin_manifest_version = 2\n\n[application]\nname = \"demo\"\n";

/// An app folder holding `spin.toml` (= `manifest`) and the given files.
pub(super) fn app_dir(manifest: &str, files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        let p = dir.path().join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"x").unwrap();
    }
    fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    dir
}

pub(super) fn load_ok(manifest: &str, files: &[&str]) -> (App, tempfile::TempDir) {
    let dir = app_dir(manifest, files);
    let app = load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (app, dir)
}

/// The error for `manifest`, with the temp folder replaced by `APP` for readability.
pub(super) fn load_err(manifest: &str, files: &[&str]) -> String {
    let dir = app_dir(manifest, files);
    let e = load(&dir.path().join("spin.toml")).unwrap_err().to_string();
    e.replace(&dir.path().display().to_string(), "APP")
}

pub(super) fn with_head(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

const FULL: &str = r#"
spin_manifest_version = 2

[application]
name = "demo"
version = "1.2.3"
description = "A demo"
authors = ["Ann <ann@example.com>"]
targets = ["spin-up:3.3"]

[application.trigger.http]
base = "api/"

[application.trigger.redis]
address = "redis://localhost"

[application.tool.spin-test]
source = "x"

[variables]
api_key = { required = true, secret = true }
greeting = { default = "hi", description = "shown to users" }

[[trigger.http]]
route = "/hello/..."
component = "hello"

[[trigger.http]]
id = "users"
route = "/users/:id"
component = "hello"
executor = { type = "spin" }

[[trigger.http]]
route = "/health"
static_response = { status_code = 204, headers = { x-b = "2", x-a = "1" } }

[[trigger.http]]
id = "inline"
route = { private = true }
component = { source = "other.wasm", variables = { greet = "{{ greeting }}!" } }

[component.hello]
source = "target/hello.wasm"
description = "Says hello"
environment = { RUST_LOG = "info" }
files = ["static/**/*", { source = "assets", destination = "/web" }]
exclude_files = ["**/*.bak"]
allowed_outbound_hosts = ["https://example.com", "redis://{{ greeting }}:6379", "self"]
key_value_stores = ["default"]
variables = { key = "{{ api_key }}", mixed = "x-{{api_key}}-{{ greeting }}" }
tool = { x = 1 }

[component.hello.build]
command = ["cargo build", "echo done"]
workdir = "."
watch = ["src/**/*.rs"]

[component.unused]
source = "other.wasm"
"#;

#[test]
fn loads_full_manifest() {
    let files = [
        "target/hello.wasm",
        "other.wasm",
        "static/a.txt",
        "static/b.bak",
        "assets/logo.png",
    ];
    let (app, dir) = load_ok(FULL, &files);
    let base = dir.path().canonicalize().unwrap();
    assert_eq!(app.name, "demo");
    assert_eq!(app.version.as_deref(), Some("1.2.3"));
    assert_eq!(app.description.as_deref(), Some("A demo"));
    assert_eq!(app.base_dir, base);
    assert_eq!(app.manifest_path, base.join("spin.toml"));
    assert_eq!(app.http_base, "/api");

    assert_eq!(
        app.variables["api_key"],
        AppVariable {
            default: None,
            required: true,
            secret: true,
            description: None
        }
    );
    assert_eq!(app.variables["greeting"].default.as_deref(), Some("hi"));

    let ids: Vec<&str> = app.components.keys().map(String::as_str).collect();
    assert_eq!(ids, ["hello", "inline-component", "unused"]);
    let hello = &app.components["hello"];
    assert_eq!(hello.source, base.join("target/hello.wasm"));
    assert_eq!(hello.environment["RUST_LOG"], "info");
    let dests: Vec<&str> = hello.files.iter().map(|f| f.destination.as_str()).collect();
    assert_eq!(dests, ["/static/a.txt", "/web/logo.png"]);
    assert_eq!(hello.allowed_outbound_hosts.len(), 3);
    assert_eq!(hello.variables["key"], "{{ api_key }}");
    assert!(!hello.inline);
    assert!(app.components["inline-component"].inline);

    let triggers: Vec<(&str, &str)> = app
        .http_triggers
        .iter()
        .map(|t| (t.id.as_str(), t.route.raw()))
        .collect();
    assert_eq!(
        triggers,
        [
            ("trigger-hello", "/hello/..."),
            ("users", "/users/:id"),
            ("trigger-2", "/health"),
            ("inline", route::PRIVATE_ROUTE_TEXT),
        ]
    );
    assert_eq!(
        app.http_triggers[0].handler,
        HttpHandler::Component("hello".into())
    );
    assert_eq!(
        app.http_triggers[2].handler,
        HttpHandler::Static(StaticResponse {
            status: 204,
            headers: vec![("x-b".into(), "2".into()), ("x-a".into(), "1".into())],
            body: None,
        })
    );
    assert!(app.http_triggers[3].route.is_private());
    assert_eq!(
        app.http_triggers[3].handler,
        HttpHandler::Component("inline-component".into())
    );
}

#[test]
fn minimal_defaults() {
    let m = with_head(
        "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    let (app, _dir) = load_ok(&m, &["a.wasm"]);
    assert_eq!(app.http_base, "/");
    assert!(app.variables.is_empty());
    assert!(app.components["a"].files.is_empty());
    let m = with_head("[[trigger.http]]\nroute = \"/\"\nstatic_response = { body = \"ok\" }\n");
    let (app, _dir) = load_ok(&m, &[]);
    match &app.http_triggers[0].handler {
        HttpHandler::Static(s) => {
            assert_eq!(s.status, 200);
            assert_eq!(s.body.as_deref(), Some("ok"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn generated_trigger_ids_do_not_collide() {
    let m = with_head(
        "[[trigger.http]]\nroute = \"/a\"\ncomponent = \"a\"\n\
         [[trigger.http]]\nroute = \"/b\"\ncomponent = \"a\"\n\
         [[trigger.http]]\nid = \"trigger-a-1\"\nroute = \"/c\"\ncomponent = \"a\"\n\
         [component.a]\nsource = \"a.wasm\"\n",
    );
    let (app, _dir) = load_ok(&m, &["a.wasm"]);
    let ids: Vec<&str> = app.http_triggers.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["trigger-a", "trigger-a-2", "trigger-a-1"]);
}

#[test]
fn path_forms() {
    let m = with_head("[[trigger.http]]\nroute = \"/\"\nstatic_response = {}\n");
    let dir = app_dir(&m, &[]);
    // A folder, the file itself, and a differently named file all load.
    assert!(load(dir.path()).is_ok());
    assert!(load(&dir.path().join("spin.toml")).is_ok());
    fs::copy(dir.path().join("spin.toml"), dir.path().join("other.toml")).unwrap();
    assert_eq!(
        load(&dir.path().join("other.toml"))
            .unwrap()
            .manifest_path
            .file_name()
            .unwrap(),
        "other.toml"
    );

    let empty = tempfile::tempdir().unwrap();
    let e = load(empty.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: no spin.toml found (pass a spin.toml file or the folder that holds one)",
            empty.path().display()
        )
    );
    let e = load(Path::new("/nonexistent/x.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/nonexistent/x.toml: no spin.toml found"),
        "{e}"
    );
}

#[test]
fn error_messages() {
    // (manifest after the [application] head, expected error with APP = the app folder)
    let cases: &[(&str, &str)] = &[
        (
            "[[trigger.http]]\nroute = \"/\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"target/x.wasm\"\n",
            "APP/spin.toml: component \"hello\": source \"target/x.wasm\": no such file",
        ),
        (
            "[[trigger.http]]\nroute = \"/\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"target\"\n",
            "APP/spin.toml: component \"hello\": source \"target\": not a file",
        ),
        (
            "[[trigger.http]]\nroute = \"/\"\nstatic_response = {}\n[[trigger.http]]\nroute = \"/b\"\nstatic_response = {}\n\
             [[trigger.http]]\nid = \"api\"\nroute = \"/a/:\"\nstatic_response = {}\n",
            "APP/spin.toml: trigger.http[2] (id \"api\"): route \"/a/:\": empty parameter name",
        ),
        (
            "colour = \"red\"\n",
            "APP/spin.toml: line 5, column 1: unknown field `colour`, expected one of `name`, `version`, \
             `description`, `authors`, `targets`, `trigger`, `tool`",
        ),
        (
            "[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"hello\"\n",
            "APP/spin.toml: trigger.redis[0] (id \"trigger-hello\"): no `address`, and no \
             [application.trigger.redis] address to fall back on",
        ),
        (
            "[[trigger.http]]\nroute = \"/\"\ncomponent = \"nope\"\n",
            "APP/spin.toml: trigger.http[0] (id \"trigger-nope\"): component \"nope\" is not defined (no [component.nope])",
        ),
    ];
    for (rest, want) in cases {
        assert_eq!(
            load_err(&with_head(rest), &["hello.wasm", "target/x"]),
            *want,
            "{rest}"
        );
    }
}

/// Errors checked by a distinctive part of the message (and that the place is named).
#[test]
fn rejections() {
    let ok_comp = "[component.hello]\nsource = \"hello.wasm\"\n";
    let trig = "[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n";
    let cases: Vec<(String, &str)> = vec![
        // manifest / application
        (
            "spin_manifest_version = 2\n[application]\nname = \"\"\n".into(),
            "application.name: must not be empty",
        ),
        (
            "spin_manifest_version = 2\n".into(),
            "missing field `application`",
        ),
        (
            "spin_manifest_version = \"1\"\nname = \"x\"\n".into(),
            "spin_manifest_version: this is a Spin manifest v1",
        ),
        (
            with_head("[application.trigger.http]\nbase = \"/a/:x\"\n"),
            "application.trigger.http.base: \"/a/:x\"",
        ),
        (
            with_head("[application.trigger.http]\nbse = \"/\"\n"),
            "unknown field `bse`",
        ),
        // variables
        (
            with_head("[variables]\nApiKey = { default = \"x\" }\n"),
            "variable \"ApiKey\": bad name",
        ),
        (
            with_head("[variables]\nk = { default = \"x\", required = true }\n"),
            "variable \"k\": `required = true` and a `default`",
        ),
        (
            with_head("[variables]\nk = { defualt = \"x\" }\n"),
            "unknown field `defualt`",
        ),
        // components
        (
            with_head("[component.Hello]\nsource = \"hello.wasm\"\n"),
            "component \"Hello\": bad id: \"Hello\" is not kebab-case",
        ),
        (
            with_head(
                "[component.hello]\nsource = { url = \"https://x\", digest = \"sha256:0\" }\n",
            ),
            "component \"hello\": source { digest, url }: not supported: only local paths",
        ),
        (
            with_head(
                "[component.hello]\nsource = { registry = \"r\", package = \"p:q\", version = \"1\" }\n",
            ),
            "not supported: only local paths",
        ),
        (
            with_head(&format!("{ok_comp}allowed_http_hosts = [\"x\"]\n")),
            "component \"hello\": `allowed_http_hosts` is deprecated and not supported; use `allowed_outbound_hosts`",
        ),
        (
            with_head(&format!("{ok_comp}sqlite_databases = [\"default\"]\n")),
            "component \"hello\": `sqlite_databases` is not supported",
        ),
        (
            with_head(&format!("{ok_comp}ai_models = [\"llama\"]\n")),
            "`ai_models` is not supported",
        ),
        (
            with_head(&format!(
                "{ok_comp}dependencies_inherit_configuration = true\n"
            )),
            "`dependencies_inherit_configuration` is not supported",
        ),
        (
            with_head(&format!("{ok_comp}targets = [\"x\"]\n")),
            "`targets` is not supported",
        ),
        (
            with_head(&format!(
                "{ok_comp}[component.hello.profile.debug]\nsource = \"x\"\n"
            )),
            "`profile` is not supported",
        ),
        (
            with_head(&format!(
                "{ok_comp}[component.hello.dependencies]\n\"a:b/c\" = \"1\"\n"
            )),
            "`dependencies` is not supported",
        ),
        (
            with_head(&format!("{ok_comp}sauce = 1\n")),
            "unknown field `sauce`",
        ),
        (
            with_head(&format!(
                "{ok_comp}variables = {{ key = \"{{{{ nope }}}}\" }}\n"
            )),
            "component \"hello\": variables.key: \"{{ nope }}\" references undeclared variable \"nope\"",
        ),
        (
            with_head(&format!("{ok_comp}variables = {{ Key = \"x\" }}\n")),
            "component \"hello\": variables.Key: bad name",
        ),
        (
            with_head(&format!("{ok_comp}variables = {{ key = \"{{{{ nope\" }}\n")),
            "without a closing",
        ),
        (
            with_head(&format!(
                "{ok_comp}allowed_outbound_hosts = [\"https://{{{{ host }}}}\"]\n"
            )),
            "component \"hello\": allowed_outbound_hosts[0]: \"https://{{ host }}\" references undeclared variable \"host\"",
        ),
        (
            with_head(&format!(
                "{ok_comp}allowed_outbound_hosts = [\"https://a.com\", \"https://a.com/path\"]\n"
            )),
            "component \"hello\": allowed_outbound_hosts[1]: \"https://a.com/path\": a path is not allowed",
        ),
        (
            with_head(&format!("{ok_comp}files = [\"nothing/*\"]\n")),
            "component \"hello\": files[0] \"nothing/*\": matches no files",
        ),
        (
            with_head(&format!("{ok_comp}files = [\"../x\"]\n")),
            "must not contain \"..\"",
        ),
        (
            with_head(&format!(
                "{ok_comp}files = [{{ source = \"/etc\", destination = \"/etc\" }}]\n"
            )),
            "not absolute",
        ),
        (
            with_head(&format!("{ok_comp}key_value_stores = [\"\"]\n")),
            "key_value_stores[0]",
        ),
        (
            with_head(&format!(
                "{ok_comp}[component.hello.build]\ncommand = \"make\"\nwatc = []\n"
            )),
            "unknown field `watc`",
        ),
        // triggers
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\ncomponent = \"hello\"\n"
            )),
            "missing field `route`",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\ncomponent = \"hello\"\nstatic_response = {{}}\n"
            )),
            "trigger.http[0] (id \"trigger-hello\"): has both `component` and `static_response`",
        ),
        (
            with_head("[[trigger.http]]\nroute = \"/\"\n"),
            "trigger.http[0] (id \"trigger-0\"): needs a `component` or a `static_response`",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\ncomponent = \"hello\"\nexecutor = {{ type = \"wagi\" }}\n"
            )),
            "executor type \"wagi\" is not supported",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\ncomponents = [\"hello\"]\n"
            )),
            "`components` (middleware chains) is not supported",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\ncomponent = \"hello\"\ndependencies = {{}}\n"
            )),
            "`dependencies` is not supported",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"hello\"\ncomponent = \"hello\"\n"
            )),
            "route \"hello\": route must start with \"/\"",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/.../x\"\ncomponent = \"hello\"\n"
            )),
            "\"...\" is only allowed as the last segment",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/a/:id/:id\"\ncomponent = \"hello\"\n"
            )),
            "parameter \":id\" appears more than once",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = {{ private = false }}\ncomponent = \"hello\"\n"
            )),
            "{ private = true }",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = {{ public = true }}\ncomponent = \"hello\"\n"
            )),
            "unknown field `public`",
        ),
        (
            with_head(&format!(
                "{ok_comp}{trig}[[trigger.http]]\nid = \"two\"\nroute = \"/...\"\ncomponent = \"hello\"\n"
            )),
            "trigger.http[1] (id \"two\"): route \"/...\" matches the same requests as route \"/...\" of trigger.http[0] (id \"trigger-hello\")",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/u/:id\"\ncomponent = \"hello\"\n[[trigger.http]]\nroute = \"/u/:name/\"\ncomponent = \"hello\"\n"
            )),
            "matches the same requests",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nid = \"x\"\nroute = \"/a\"\ncomponent = \"hello\"\n[[trigger.http]]\nid = \"x\"\nroute = \"/b\"\ncomponent = \"hello\"\n"
            )),
            "trigger.http[1] (id \"x\"): another trigger already has this id",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\nstatic_response = {{ status_code = 42 }}\n"
            )),
            "status_code 42 is not an HTTP status",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\nstatic_response = {{ headers = {{ \"bad header\" = \"x\" }} }}\n"
            )),
            "\"bad header\" is not a valid header name",
        ),
        (
            with_head(&format!(
                "{ok_comp}[[trigger.http]]\nroute = \"/\"\nstatic_response = {{ stauts_code = 200 }}\n"
            )),
            "unknown field `stauts_code`",
        ),
        (
            with_head(
                "[[trigger.http]]\nid = \"t\"\nroute = \"/\"\ncomponent = { source = \"missing.wasm\" }\n",
            ),
            "trigger.http[0] (id \"t\"): inline component: source \"missing.wasm\": no such file",
        ),
        (
            with_head(
                "[[trigger.http]]\nid = \"t\"\nroute = \"/\"\ncomponent = { source = \"hello.wasm\", colour = 1 }\n",
            ),
            "unknown field `colour`",
        ),
        (
            with_head(
                "[component.t-component]\nsource = \"hello.wasm\"\n[[trigger.http]]\nid = \"t\"\nroute = \"/\"\ncomponent = { source = \"hello.wasm\" }\n",
            ),
            "clashes with [component.t-component]",
        ),
        (
            with_head("[[trigger.sqs]]\ncomponent = \"x\"\n"),
            "trigger.sqs: trigger type \"sqs\" is not supported",
        ),
    ];
    for (manifest, want) in &cases {
        let e = load_err(manifest, &["hello.wasm"]);
        assert!(e.starts_with("APP/spin.toml: "), "{e}");
        assert!(
            e.contains(want),
            "\nmanifest:\n{manifest}\nwant: {want}\ngot:  {e}"
        );
        assert!(!e.contains('\n'), "multi-line error: {e}");
    }
}

#[test]
fn type_errors_are_placed() {
    let m = with_head("[component.hello]\nsource = \"hello.wasm\"\nenvironment = { A = 1 }\n");
    let e = load_err(&m, &["hello.wasm"]);
    assert!(e.starts_with("APP/spin.toml: line 7, column "), "{e}");
    // An error inside an inline component keeps its position too.
    let m = with_head(
        "[[trigger.http]]\nroute = \"/\"\ncomponent = { source = \"hello.wasm\", files = 3 }\n",
    );
    let e = load_err(&m, &["hello.wasm"]);
    assert!(e.starts_with("APP/spin.toml: line 7, column "), "{e}");
}

#[test]
fn load_str_uses_given_base() {
    let dir = app_dir("", &["a.wasm"]);
    let base = dir.path().canonicalize().unwrap();
    let m = with_head(
        "[[trigger.http]]\nroute = \"/\"\ncomponent = \"a\"\n[component.a]\nsource = \"a.wasm\"\n",
    );
    let app = load_str("bundle:spin.toml", &m, &base).unwrap();
    assert_eq!(app.components["a"].source, base.join("a.wasm"));
    let e = load_str("bundle:spin.toml", "x = ", &base)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bundle:spin.toml: line 1, column "), "{e}");
}
