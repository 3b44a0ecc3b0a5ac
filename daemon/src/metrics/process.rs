//! The process itself, read from the kernel when scraped, under the names
//! every Prometheus client uses (`process_*`), plus gatewayd's uptime and
//! build info.

use std::time::{Instant, SystemTime};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    wasmtime: &'static str,
    /// The CPU architecture built for (x86_64, aarch64, riscv64, arm).
    arch: &'static str,
    /// What runs components on this machine: "native" or "pulley".
    codegen: String,
}

/// The wasmtime release linked in (kept equal to the workspace's pin by
/// the unit test below).
const WASMTIME_VERSION: &str = "48.0.8";

pub struct ProcessMetrics {
    build: Family<BuildLabels, Gauge>,
}

impl ProcessMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        registry.register_collector(Box::new(ProcessCollector {
            started: SystemTime::now(),
            clock: Instant::now(),
        }));
        let build = Family::default();
        registry.register(
            "gatewayd_build_info",
            "1, with the gatewayd version, the wasmtime version, the architecture and the code \
             generator (native or pulley) as labels",
            Family::clone(&build),
        );
        Self { build }
    }

    /// Records what runs components: `pulley` when the main engine
    /// interprets, else `native`.
    pub fn engine_built(&self, pulley: bool) {
        self.build.clear();
        self.build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                wasmtime: WASMTIME_VERSION,
                arch: std::env::consts::ARCH,
                codegen: if pulley { "pulley" } else { "native" }.to_string(),
            })
            .set(1);
    }
}

#[derive(Debug)]
struct ProcessCollector {
    started: SystemTime,
    clock: Instant,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let page = page_size();
        let (virtual_pages, resident_pages) = statm().unwrap_or_default();
        let start = self
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let gauges = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                (resident_pages * page) as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                (virtual_pages * page) as f64,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                open_fds() as f64,
            ),
            (
                "process_max_fds",
                "The soft limit on open file descriptors",
                None,
                max_fds() as f64,
            ),
            (
                "process_start_time",
                "When the process started its runtime (Unix time)",
                Some(Unit::Seconds),
                start,
            ),
            (
                "gatewayd_uptime",
                "Time since the process started its runtime",
                Some(Unit::Seconds),
                self.clock.elapsed().as_secs_f64(),
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            let metric =
                encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let cpu = ConstCounter::new(cpu_seconds());
        let metric = encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?;
        cpu.encode(metric)
    }
}

/// Virtual and resident size, in pages.
fn statm() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some((fields.next()??, fields.next()??))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count().saturating_sub(1))
}

fn max_fds() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    // rlim_t is 32 bits on armv7.
    #[allow(clippy::useless_conversion)]
    u64::from(limit.rlim_cur)
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_wasmtime_version_label_is_the_one_linked() {
        let manifest = include_str!("../../../Cargo.toml");
        let pin = format!("wasmtime = {{ version = \"={}\"", super::WASMTIME_VERSION);
        assert!(manifest.contains(&pin), "Cargo.toml does not pin {pin}");
    }
}
