//! What one HTTP request to a component costs inside the process, with no
//! network and no HTTP server around it, one request after another on one
//! thread, timing each step:
//!
//! - `wasmtime`: the floor under any gateway that gives each WASI 0.2 request
//!   a fresh instance. gatewayd's own engine for plain calls (same code,
//!   pooling allocator, warm slots and epoch settings, from
//!   `gatewayd::engine`) with the cheapest host state wasmtime-wasi-http
//!   allows: a default `WasiCtx`, the default hooks, WASI 0.2 and wasi:http
//!   linked and pre-instantiated once. Each request makes a store,
//!   instantiates, calls `wasi:http/incoming-handler.handle` with an
//!   in-memory GET (the one Host header wrk sends), reads the response and
//!   its body, and drops the store. Then the same with the seven `spin-*`
//!   headers gatewayd's server adds for Spin compatibility.
//! - `gatewayd`: the request with Spin's headers through gatewayd's own handler
//!   (`trigger::http::Handler`) for the component loaded as `up` loads it:
//!   its store (WASI context from the manifest, grants, memory budget, epoch
//!   deadline), the instance semaphore, the call on a task of its own, and,
//!   for a WASI 0.3 component, instances reused as the gateway reuses them
//!   (measured without Spin's headers, to compare with the floor).
//!
//! `benches/cost.sh` sets these beside what the native server and gatewayd
//! cost per request under load.
//!
//! Usage: instance-cost [--requests N] [--concurrency C] [--rounds R]
//!        WASI02.wasm [WASI03.wasm]
//! Prints a line per round and, last, `floor_us`, `spin_headers_us` and
//! `gatewayd_us` (median CPU time per request, in µs) for the WASI 0.2
//! component, and
//! `gatewayd_wasi03_us` for the WASI 0.3 one. The steps of the floor are
//! timed apart at a concurrency of 1 only (interleaved, a step's wall time
//! includes the others' turns).

use std::convert::Infallible;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::Parser;
use gatewayd::engine::cache::CodeCache;
use gatewayd::engine::{self, Calls, CodeTarget, EngineSettings, Engines};
use gatewayd::executor::{Executor, InstanceLimits};
use gatewayd::host::HostResources;
use gatewayd::host::key_value::{KeyValueLimits, Stores};
use gatewayd::host::mqtt::MqttConnections;
use gatewayd::trigger::http::{Handler, ReusePolicy};
use http_body_util::{BodyExt as _, Empty};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

#[derive(Parser)]
struct Args {
    /// Requests per round.
    #[arg(long, default_value_t = 20_000)]
    requests: u32,
    /// Requests in flight at once on the thread (interleaved at their await
    /// points, as a serving thread interleaves its connections' requests).
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Rounds per measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// A WASI 0.2 HTTP component (hello-wstd).
    wasi02: PathBuf,
    /// A WASI 0.3 HTTP component (the Spin SDK 7 hello), measured through
    /// gatewayd's handler only.
    wasi03: Option<PathBuf>,
}

/// The cheapest host state wasmtime-wasi-http allows.
struct Floor {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
}

impl WasiView for Floor {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Floor {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// Wall time spent in each step of a request, summed over a round.
#[derive(Default)]
struct Steps {
    instantiate: Duration,
    handle: Duration,
    body: Duration,
    drop: Duration,
}

impl Steps {
    fn describe(&self, requests: u32, concurrency: u32) -> String {
        if self.handle.is_zero() || concurrency > 1 {
            return String::new();
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(requests);
        format!(
            " (instantiate {:.2}, handle {:.2}, body {:.2}, drop {:.2})",
            per(self.instantiate),
            per(self.handle),
            per(self.body),
            per(self.drop),
        )
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let (engines, how) = engine::build(&EngineSettings::defaults())?;
    println!("engine: {how}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let engine = &engines
        .slot(&CodeTarget::host(), Calls::Plain)
        .context("no engine for plain calls")?
        .engine;
    let wasm = std::fs::read(&args.wasi02)
        .with_context(|| format!("reading {}", args.wasi02.display()))?;
    let component = Component::new(engine, &wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("compiling {} for plain calls", args.wasi02.display()))?;
    let pre = link(engine, &component)?;
    let floor = measure(
        &runtime,
        &args,
        "wasmtime, WASI 0.2, fresh instances",
        || floor_request(engine, &pre, false),
    )?;
    let spin_headers = measure(
        &runtime,
        &args,
        "wasmtime, WASI 0.2, fresh instances, Spin's headers",
        || floor_request(engine, &pre, true),
    )?;

    let state = std::env::temp_dir().join(format!("instance-cost-{}", std::process::id()));
    // The handlers start their tasks on this runtime.
    let _runtime = runtime.enter();
    let measured = (|| {
        let wasi02 = gatewayd_handler(&engines, &state.join("wasi02"), &args.wasi02)?;
        let gatewayd = measure(
            &runtime,
            &args,
            "gatewayd, WASI 0.2, fresh instances",
            || handler_request(&wasi02, true),
        )?;
        let reused = match &args.wasi03 {
            Some(path) => {
                let wasi03 = gatewayd_handler(&engines, &state.join("wasi03"), path)?;
                Some(measure(
                    &runtime,
                    &args,
                    "gatewayd, WASI 0.3, reused instances, without Spin's headers",
                    || handler_request(&wasi03, false),
                )?)
            }
            None => None,
        };
        anyhow::Ok((gatewayd, reused))
    })();
    let _ = std::fs::remove_dir_all(&state);
    let (gatewayd, reused) = measured?;
    println!("floor_us {floor:.2}");
    println!("spin_headers_us {spin_headers:.2}");
    println!("gatewayd_us {gatewayd:.2}");
    if let Some(reused) = reused {
        println!("gatewayd_wasi03_us {reused:.2}");
    }
    Ok(())
}

/// Rounds of `args.requests` requests made by `request`, after a warm-up
/// round (the pool's warm slots, the allocator's caches); prints each and
/// returns the median CPU time per request in µs.
fn measure<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    name: &str,
    mut request: F,
) -> Result<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Steps>>,
{
    let mut round = |requests: u32| -> Result<Steps> {
        runtime.block_on(async {
            let mut total = Steps::default();
            let mut left = requests;
            while left > 0 {
                let batch = left.min(args.concurrency.max(1));
                left -= batch;
                let batch = (0..batch).map(|_| request());
                for steps in futures_util::future::join_all(batch).await {
                    let steps = steps?;
                    total.instantiate += steps.instantiate;
                    total.handle += steps.handle;
                    total.body += steps.body;
                    total.drop += steps.drop;
                }
            }
            Ok(total)
        })
    };
    round(args.requests.min(1_000))?;
    let mut cpu_per_request = Vec::new();
    for n in 1..=args.rounds {
        let cpu = cpu_time()?;
        let wall = Instant::now();
        let steps = round(args.requests)?;
        let wall = wall.elapsed();
        let cpu = cpu_time()? - cpu;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(args.requests);
        println!(
            "{name}, round {n}: {} requests, {} at a time, {:.2} µs CPU and {:.2} µs wall each{}",
            args.requests,
            args.concurrency,
            per(cpu),
            per(wall),
            steps.describe(args.requests, args.concurrency),
        );
        cpu_per_request.push(per(cpu));
    }
    cpu_per_request.sort_by(f64::total_cmp);
    Ok(cpu_per_request[cpu_per_request.len() / 2])
}

fn link(engine: &Engine, component: &Component) -> Result<ProxyPre<Floor>> {
    let mut linker = Linker::<Floor>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    let pre = linker.instantiate_pre(component)?;
    Ok(ProxyPre::new(pre)?)
}

/// Spin's request headers as gatewayd sets them for a GET of `/` routed by
/// `/...` (see `trigger/http/headers.rs`).
const SPIN_HEADERS: [(&str, &str); 7] = [
    ("spin-full-url", "http://127.0.0.1:3000/"),
    ("spin-path-info", "/"),
    ("spin-matched-route", "/..."),
    ("spin-raw-component-route", "/..."),
    ("spin-component-route", ""),
    ("spin-base-path", "/"),
    ("spin-client-addr", "127.0.0.1:40000"),
];

/// A GET of `/` with the Host header wrk sends, and with Spin's headers if
/// `spin` (what gatewayd's server gives a component).
fn get(spin: bool) -> Result<http::Request<WasiBody>> {
    let mut request = http::Request::get("/").header(http::header::HOST, "127.0.0.1:3000");
    if spin {
        for (name, value) in SPIN_HEADERS {
            request = request.header(name, value);
        }
    }
    Ok(request.body(
        Empty::<Bytes>::new()
            .map_err(|never: Infallible| -> wasmtime_wasi_http::Error { match never {} })
            .boxed_unsync(),
    )?)
}

/// One request on a fresh instance with the cheapest host state.
async fn floor_request(engine: &Engine, pre: &ProxyPre<Floor>, spin: bool) -> Result<Steps> {
    let started = Instant::now();
    let mut store = Store::new(
        engine,
        Floor {
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
        },
    );
    // gatewayd's engines interrupt by epoch; nothing ticks here.
    store.set_epoch_deadline(u64::MAX / 2);
    let proxy = pre.instantiate_async(&mut store).await?;
    let instantiated = Instant::now();

    let (sender, receiver) = tokio::sync::oneshot::channel();
    let mut http = store.data_mut().http();
    let incoming = http.new_incoming_request(Scheme::Http, get(spin)?)?;
    let outparam = http.new_response_outparam(sender)?;
    proxy
        .wasi_http_incoming_handler()
        .call_handle(&mut store, incoming, outparam)
        .await?;
    let handled = Instant::now();

    let response = match receiver.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => bail!("the component answered with an error: {code:?}"),
        Err(_) => bail!("the component set no response"),
    };
    read_body(response).await?;
    let read = Instant::now();
    drop(store);
    Ok(Steps {
        instantiate: instantiated - started,
        handle: handled - instantiated,
        body: read - handled,
        drop: read.elapsed(),
    })
}

/// One request through gatewayd's handler (its steps are not timed apart).
async fn handler_request(handler: &Handler, spin: bool) -> Result<Steps> {
    let response = handler.handle(get(spin)?).await?;
    read_body(response).await?;
    Ok(Steps::default())
}

async fn read_body<B>(response: http::Response<B>) -> Result<()>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let body = response.into_body().collect().await?.to_bytes();
    if body.is_empty() {
        bail!("the component answered with an empty body");
    }
    Ok(())
}

/// gatewayd's handler for the component at `wasm`, loaded as `up` loads an
/// app of one HTTP route to it (state, code cache and key-value stores in
/// `state`).
fn gatewayd_handler(engines: &Engines, state: &Path, wasm: &Path) -> Result<Handler> {
    std::fs::create_dir_all(state)?;
    let manifest = format!(
        "spin_manifest_version = 2\n\
         [application]\nname = \"cost\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n\
         [component.c]\nsource = {:?}\n",
        std::fs::canonicalize(wasm)?
    );
    let app = gatewayd::app::load_str("cost/spin.toml", &manifest, state)?;
    let cache = CodeCache::new(engines, state.join("cache"), 0)?;
    let resources = HostResources {
        stores: Arc::new(Stores::open(
            &state.join("kv"),
            &Default::default(),
            KeyValueLimits::default(),
        )?),
        self_address: Default::default(),
        redis: Default::default(),
        mqtt: Arc::new(MqttConnections::new(gatewayd::tls::client_config(&[])?)),
    };
    let limits = InstanceLimits {
        max_memory: 128 << 20,
    };
    let executor = Executor::load(engines, &app, &cache, state, &resources, &limits)?;
    let component = executor.component("c").context("component c")?.clone();
    let (handler, _) = Handler::new(
        component,
        Arc::new(tokio::sync::Semaphore::new(256)),
        &ReusePolicy::default(),
        Some(Duration::from_secs(30)),
    )?;
    Ok(handler)
}

/// CPU time this process has used (user and system).
fn cpu_time() -> Result<Duration> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrusage");
    }
    // SAFETY: initialised by the successful call above.
    let usage = unsafe { usage.assume_init() };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(Duration::from_micros(
        micros(usage.ru_utime) + micros(usage.ru_stime),
    ))
}
