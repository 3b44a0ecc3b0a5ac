//! A component's stdout and stderr, turned into the daemon's log lines.
//!
//! Guest output is split into lines and each line is logged with the
//! component id, so journald shows which component said what. A partial line
//! is held until its newline (bounded, so a guest cannot grow it without limit)
//! and flushed when the instance goes away.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest partial line held back waiting for its newline.
const MAX_PENDING_LINE: usize = 16 * 1024;

#[derive(Clone, Copy, Debug)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One guest output stream; cheap to clone (clones share the pending line).
#[derive(Clone)]
pub struct LogStream {
    inner: Arc<Inner>,
}

struct Inner {
    component_id: Arc<str>,
    stream: Stream,
    pending: Mutex<Vec<u8>>,
}

impl LogStream {
    pub fn new(component_id: Arc<str>, stream: Stream) -> Self {
        Self {
            inner: Arc::new(Inner {
                component_id,
                stream,
                pending: Mutex::new(Vec::new()),
            }),
        }
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut pending = self.inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            pending.extend_from_slice(&bytes[..newline]);
            self.inner.emit(&pending);
            pending.clear();
            bytes = &bytes[newline + 1..];
        }
        pending.extend_from_slice(bytes);
        if pending.len() >= MAX_PENDING_LINE {
            self.inner.emit(&pending);
            pending.clear();
        }
    }
}

impl Inner {
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let id = &*self.component_id;
        match self.stream {
            Stream::Stdout => tracing::info!(target: "guest", component = id, "{line}"),
            Stream::Stderr => tracing::warn!(target: "guest", component = id, "{line}"),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let pending = self.pending.get_mut().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() {
            let line = std::mem::take(pending);
            self.emit(&line);
        }
    }
}

impl StdoutStream for LogStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl OutputStream for LogStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(stream: &LogStream) -> Vec<u8> {
        stream.inner.pending.lock().unwrap().clone()
    }

    #[test]
    fn splits_lines_and_holds_partial_ones() {
        let stream = LogStream::new(Arc::from("c"), Stream::Stdout);
        stream.write_bytes(b"one\ntwo\nthr");
        assert_eq!(pending(&stream), b"thr");
        stream.write_bytes(b"ee\n");
        assert!(pending(&stream).is_empty());
    }

    #[test]
    fn a_line_without_end_is_bounded() {
        let stream = LogStream::new(Arc::from("c"), Stream::Stderr);
        stream.write_bytes(&vec![b'x'; MAX_PENDING_LINE + 10]);
        assert!(pending(&stream).is_empty());
        stream.write_bytes(b"tail");
        assert_eq!(pending(&stream), b"tail");
    }
}
