//! Measures time from process start to the first successful HTTP response,
//! and the idle resident memory afterwards.
//!
//! Usage: startup URL_PATH -- COMMAND [ARGS...]
//! The command must serve on the address it prints as `http://ADDR` on stdout
//! (gatewayd's banner does). Prints `first_response_ms=<f64> idle_rss_kib=<u64>`.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let split = args
        .iter()
        .position(|a| a == "--")
        .ok_or_else(|| anyhow::anyhow!("usage: startup URL_PATH -- COMMAND [ARGS...]"))?;
    let path = &args[0];
    let command = &args[split + 1..];

    let started = Instant::now();
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or_else(|| anyhow::anyhow!("server exited before printing its address"))??;
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim().trim_end_matches('/').to_string();
        }
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});

    let deadline = started + Duration::from_secs(120);
    let first_response = loop {
        if get_ok(&addr, path) {
            break started.elapsed();
        }
        anyhow::ensure!(Instant::now() < deadline, "no response within 120 s");
        std::thread::sleep(Duration::from_micros(200));
    };
    std::thread::sleep(Duration::from_millis(500));
    let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "first_response_ms={:.1} idle_rss_kib={rss}",
        first_response.as_secs_f64() * 1000.0
    );
    Ok(())
}

fn get_ok(addr: &str, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}
