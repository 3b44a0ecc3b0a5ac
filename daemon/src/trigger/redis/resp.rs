//! A Redis pub/sub subscriber that reads only as fast as messages are handled and
//! never holds a message over its size limit.
//!
//! The redis crate's async pub/sub reads its socket in a background task into an
//! unbounded channel and takes every bulk string whole, so a fast publisher or one
//! huge message grows the daemon's memory without bound. It has no bounded mode.
//! This module speaks the few RESP2 frames a subscriber sees (AUTH, SUBSCRIBE,
//! UNSUBSCRIBE, PING and their replies, `message` pushes) over a plain socket:
//!
//! - A reader task parses one frame at a time into a channel of one, so at most two
//!   messages are held besides those being handled. While the trigger is busy the
//!   socket is not read: TCP backpressure reaches the server, and Redis's own
//!   `client-output-buffer-limit pubsub` decides when to drop a subscriber that
//!   falls too far behind (it then reconnects; pub/sub is at most once).
//! - A message whose payload is over the limit is skipped as it arrives, in small
//!   pieces, without being stored; the connection stays in step.
//! - Every line and every other bulk string is bounded too.
//!
//! The redis crate still parses addresses and publishes dead letters.

use std::io;
use std::pin::Pin;

use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _,
};
use tokio::io::{BufReader, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

/// Longest header line (`*3`, `$12`, `-ERR ...`) accepted.
const MAX_LINE: usize = 4096;
/// Largest bulk string other than a message payload (command names, channels).
const MAX_SMALL_BULK: usize = 64 * 1024;

/// What the subscriber reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A message on the subscribed channel.
    Message(Vec<u8>),
    /// A message whose payload (this many bytes) was over the limit; skipped.
    TooLarge(usize),
    /// The server confirmed SUBSCRIBE or UNSUBSCRIBE of the channel.
    Subscribed,
    Unsubscribed,
    /// The answer to a PING.
    Pong,
}

type Reader = Pin<Box<dyn AsyncRead + Send>>;
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// One connection in subscribed mode.
pub struct Subscriber {
    writer: Writer,
    events: mpsc::Receiver<io::Result<Event>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Where and as whom to connect, from the trigger's `redis://` address.
pub struct Target {
    pub address: redis::ConnectionAddr,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl Target {
    pub fn of(client: &redis::Client) -> Self {
        let info = client.get_connection_info();
        let settings = info.redis_settings();
        Self {
            address: info.addr().clone(),
            username: settings
                .username()
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            password: settings.password().map(str::to_string),
        }
    }
}

impl Subscriber {
    /// Connects, authenticates if the address carries credentials, and subscribes
    /// to `channel`; returns once the server confirmed the subscription.
    pub async fn subscribe(
        target: &Target,
        channel: &str,
        max_message_size: usize,
    ) -> io::Result<Subscriber> {
        let (read, mut writer): (Reader, Writer) = match &target.address {
            redis::ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                split(stream)
            }
            redis::ConnectionAddr::Unix(path) => {
                split(tokio::net::UnixStream::connect(path).await?)
            }
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("the Redis trigger cannot connect to {other} (TLS is not supported)"),
                ));
            }
        };
        let mut frames = Frames {
            reader: BufReader::new(read),
            max_message_size,
        };
        if let Some(password) = &target.password {
            let mut auth = vec!["AUTH"];
            auth.extend(target.username.as_deref());
            auth.push(password);
            write_command(&mut writer, &auth).await?;
            match frames.reply().await? {
                Reply::Status => {}
                Reply::Error(e) => return Err(protocol(format!("AUTH refused: {e}"))),
                Reply::Event(e) => {
                    return Err(protocol(format!("unexpected answer to AUTH: {e:?}")));
                }
            }
        }
        write_command(&mut writer, &["SUBSCRIBE", channel]).await?;
        match frames.reply().await? {
            Reply::Event(Event::Subscribed) => {}
            Reply::Error(e) => return Err(protocol(format!("SUBSCRIBE refused: {e}"))),
            other => {
                return Err(protocol(format!(
                    "unexpected answer to SUBSCRIBE: {other:?}"
                )));
            }
        }
        let (tx, events) = mpsc::channel(1);
        let reader = tokio::spawn(frames.forward(tx));
        Ok(Subscriber {
            writer,
            events,
            reader,
        })
    }

    /// The next event; an error when the connection failed or was closed.
    /// Cancel-safe: nothing is lost if the future is dropped.
    pub async fn next(&mut self) -> io::Result<Event> {
        match self.events.recv().await {
            Some(event) => event,
            None => Err(io::ErrorKind::UnexpectedEof.into()),
        }
    }

    pub async fn unsubscribe(&mut self, channel: &str) -> io::Result<()> {
        write_command(&mut self.writer, &["UNSUBSCRIBE", channel]).await
    }

    pub async fn ping(&mut self) -> io::Result<()> {
        write_command(&mut self.writer, &["PING"]).await
    }
}

fn split<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> (Reader, Writer) {
    let (read, write): (ReadHalf<S>, WriteHalf<S>) = tokio::io::split(stream);
    (Box::pin(read), Box::pin(write))
}

async fn write_command(writer: &mut Writer, args: &[&str]) -> io::Result<()> {
    let mut command = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        command.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        command.extend_from_slice(arg.as_bytes());
        command.extend_from_slice(b"\r\n");
    }
    writer.write_all(&command).await?;
    writer.flush().await
}

fn protocol(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// One top-level frame.
#[derive(Debug)]
enum Reply {
    /// `+OK`
    Status,
    /// `-ERR ...`
    Error(String),
    Event(Event),
}

/// One element of a push array.
enum Item {
    Bulk(Vec<u8>),
    Skipped(usize),
    Integer,
    Nil,
}

struct Frames {
    reader: BufReader<Reader>,
    max_message_size: usize,
}

impl Frames {
    /// Reads frames and sends their events until the connection fails or the
    /// subscriber is dropped; the send waits while the subscriber is busy.
    async fn forward(mut self, events: mpsc::Sender<io::Result<Event>>) {
        loop {
            let event = match self.reply().await {
                Ok(Reply::Event(event)) => Ok(event),
                Ok(Reply::Status) => continue,
                Ok(Reply::Error(e)) => Err(protocol(format!("the server answered: {e}"))),
                Err(e) => Err(e),
            };
            let failed = event.is_err();
            if events.send(event).await.is_err() || failed {
                return;
            }
        }
    }

    async fn reply(&mut self) -> io::Result<Reply> {
        let line = self.line().await?;
        let rest = line.get(1..).unwrap_or_default();
        match line.as_bytes()[0] {
            b'+' => Ok(Reply::Status),
            b'-' => Ok(Reply::Error(rest.to_string())),
            b'*' => {
                let count: usize = rest
                    .parse()
                    .map_err(|_| protocol(format!("bad array header {line:?}")))?;
                if count > 8 {
                    return Err(protocol(format!("unexpected array of {count} elements")));
                }
                let mut items = Vec::with_capacity(count);
                for index in 0..count {
                    // Only a message's payload (its third element) may be large.
                    let limit = if index == 2 {
                        self.max_message_size
                    } else {
                        MAX_SMALL_BULK
                    };
                    items.push(self.item(limit).await?);
                }
                Ok(Reply::Event(event(items)?))
            }
            _ => Err(protocol(format!("unexpected frame {line:?}"))),
        }
    }

    async fn item(&mut self, limit: usize) -> io::Result<Item> {
        let line = self.line().await?;
        let rest = line.get(1..).unwrap_or_default();
        match line.as_bytes()[0] {
            b':' => Ok(Item::Integer),
            b'$' if rest == "-1" => Ok(Item::Nil),
            b'$' => {
                let size: usize = rest
                    .parse()
                    .map_err(|_| protocol(format!("bad bulk header {line:?}")))?;
                if size > limit {
                    self.skip((size as u64).saturating_add(2)).await?;
                    return Ok(Item::Skipped(size));
                }
                let mut bulk = vec![0; size + 2];
                self.reader.read_exact(&mut bulk).await?;
                if !bulk.ends_with(b"\r\n") {
                    return Err(protocol("a bulk string not ended by CRLF".into()));
                }
                bulk.truncate(size);
                Ok(Item::Bulk(bulk))
            }
            _ => Err(protocol(format!("unexpected element {line:?}"))),
        }
    }

    /// Reads and drops `size` bytes.
    async fn skip(&mut self, size: u64) -> io::Result<()> {
        let mut left = size;
        let mut sink = tokio::io::sink();
        while left > 0 {
            let copied = tokio::io::copy(&mut (&mut self.reader).take(left), &mut sink).await?;
            if copied == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= copied;
        }
        Ok(())
    }

    /// One CRLF-terminated line without its CRLF, at most [`MAX_LINE`] bytes.
    async fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        loop {
            let buffer = self.reader.fill_buf().await?;
            if buffer.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let (taken, done) = match buffer.iter().position(|&b| b == b'\n') {
                Some(end) => (end + 1, true),
                None => (buffer.len(), false),
            };
            line.extend_from_slice(&buffer[..taken]);
            self.reader.consume(taken);
            if line.len() > MAX_LINE + 2 {
                return Err(protocol(format!("a line longer than {MAX_LINE} bytes")));
            }
            if done {
                break;
            }
        }
        if !line.ends_with(b"\r\n") || line.len() < 3 {
            return Err(protocol("a line not ended by CRLF".into()));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line).map_err(|_| protocol("a header line that is not UTF-8".into()))
    }
}

/// The event a push array stands for.
fn event(items: Vec<Item>) -> io::Result<Event> {
    let kind = match items.first() {
        Some(Item::Bulk(kind)) => kind.to_ascii_lowercase(),
        _ => return Err(protocol("a push without a kind".into())),
    };
    match (kind.as_slice(), items.len()) {
        (b"message", 3) => match items.into_iter().nth(2) {
            Some(Item::Bulk(payload)) => Ok(Event::Message(payload)),
            Some(Item::Skipped(size)) => Ok(Event::TooLarge(size)),
            _ => Err(protocol("a message without a payload".into())),
        },
        (b"subscribe", 3) => Ok(Event::Subscribed),
        (b"unsubscribe", 3) => Ok(Event::Unsubscribed),
        (b"pong", 2) => Ok(Event::Pong),
        _ => Err(protocol(format!(
            "unexpected push {:?} of {} elements",
            String::from_utf8_lossy(&kind),
            items.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn events_of(bytes: &'static [u8], max: usize) -> Vec<Result<Event, String>> {
        let mut frames = Frames {
            reader: BufReader::new(Box::pin(bytes) as Reader),
            max_message_size: max,
        };
        let mut out = Vec::new();
        loop {
            match frames.reply().await {
                Ok(Reply::Event(e)) => out.push(Ok(e)),
                Ok(other) => out.push(Err(format!("{other:?}"))),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn messages_confirmations_and_pongs() {
        let stream = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n\
            *3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n\
            *3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n\
            *2\r\n$4\r\npong\r\n$0\r\n\r\n\
            *3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n";
        assert_eq!(
            events_of(stream, 16).await,
            vec![
                Ok(Event::Subscribed),
                Ok(Event::Message(b"hello".to_vec())),
                Ok(Event::Message(Vec::new())),
                Ok(Event::Pong),
                Ok(Event::Unsubscribed),
            ]
        );
    }

    #[tokio::test]
    async fn a_payload_over_the_limit_is_skipped_and_the_stream_stays_in_step() {
        let stream = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$10\r\n0123456789\r\n\
            *3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabc\r\n";
        assert_eq!(
            events_of(stream, 5).await,
            vec![Ok(Event::TooLarge(10)), Ok(Event::Message(b"abc".to_vec()))]
        );
    }

    #[tokio::test]
    async fn malformed_input_is_an_error_not_an_allocation() {
        let streams: [&'static [u8]; 6] = [
            b"*99999999999\r\n",
            b"*3\r\n$99999999999999999999\r\n",
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nabcXY",
            b"?\r\n",
            b"*1\r\n*1\r\n",
            b"*2\r\n$7\r\nmessage\r\n$2\r\nch\r\n",
        ];
        for stream in streams {
            let events = events_of(stream, 1024).await;
            assert!(
                matches!(events.last(), Some(Err(_))),
                "{:?}: {events:?}",
                String::from_utf8_lossy(stream)
            );
        }
        let long_line: &'static [u8] = Box::leak(vec![b'+'; MAX_LINE * 2].into_boxed_slice());
        assert!(matches!(
            events_of(long_line, 1024).await.last(),
            Some(Err(_))
        ));
    }
}
