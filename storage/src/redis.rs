//! State in Redis: the [`StateBackend`] over a real `redis-server`, talking its protocol
//! (RESP2) over TCP with a small client of our own (the backend needs eight commands). Keys
//! are `<namespace>:live:<composite key>` (the composite key as the other backends build it);
//! value state is a string, list state a list (`RPUSH`, `LRANGE`), map state a hash (`HSET`,
//! `HGETALL`). A snapshot copies the live keys under `<namespace>:cp<checkpoint>:` (`COPY`,
//! Redis 6.2 or later); a restore copies them back. How durable the state is, is Redis's own
//! setting (`appendonly`, `save`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use crate::error::{Result, StorageError};
use crate::state::{LIST, MAP, StateBackend, VALUE, prefix, unknown_checkpoint};

/// Keys copied per `SCAN` step.
const SCAN_COUNT: &str = "1000";

/// A reply of the Redis protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Status(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// Keyed state kept in a Redis server.
pub struct RedisState {
    address: String,
    namespace: String,
    connection: Mutex<Connection>,
}

impl RedisState {
    /// Connects to the Redis server at `address` (`host:port`); state goes under
    /// `namespace` (letters, digits, `_` and `-`), so several backends can share a server.
    pub fn connect(address: &str, namespace: &str) -> Result<RedisState> {
        let fail = |message: String| redis_error(address, message);
        if namespace.is_empty()
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(fail(format!(
                "namespace {namespace:?} must be letters, digits, _ or -"
            )));
        }
        let writer = TcpStream::connect(address).map_err(|error| fail(error.to_string()))?;
        writer
            .set_nodelay(true)
            .map_err(|error| fail(error.to_string()))?;
        let reader = BufReader::new(
            writer
                .try_clone()
                .map_err(|error| fail(error.to_string()))?,
        );
        let state = RedisState {
            address: address.to_string(),
            namespace: namespace.to_string(),
            connection: Mutex::new(Connection { reader, writer }),
        };
        match state.command(&[b"PING"])? {
            Reply::Status(pong) if pong == "PONG" => Ok(state),
            other => Err(fail(format!("PING answered {other:?}"))),
        }
    }

    /// Sends one command and reads its reply; a Redis error reply is an error.
    fn command(&self, parts: &[&[u8]]) -> Result<Reply> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut request = format!("*{}\r\n", parts.len()).into_bytes();
        for part in parts {
            request.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            request.extend_from_slice(part);
            request.extend_from_slice(b"\r\n");
        }
        connection
            .writer
            .write_all(&request)
            .map_err(|error| redis_error(&self.address, error.to_string()))?;
        read_reply(&mut connection.reader).map_err(|message| redis_error(&self.address, message))
    }

    fn live_key(&self, kind: u8, state: &str, key: &[u8]) -> Vec<u8> {
        let mut full = format!("{}:live:", self.namespace).into_bytes();
        full.extend(prefix(kind, state, key));
        full
    }

    /// Every key starting with `start` (which holds no glob characters but its own).
    fn keys_under(&self, start: &str) -> Result<Vec<Vec<u8>>> {
        let pattern = format!("{start}*");
        let mut cursor = b"0".to_vec();
        let mut keys = Vec::new();
        loop {
            let reply = self.command(&[
                b"SCAN",
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                SCAN_COUNT.as_bytes(),
            ])?;
            let Reply::Array(parts) = reply else {
                return Err(self.unexpected("SCAN", &reply));
            };
            match parts.as_slice() {
                [Reply::Bulk(Some(next)), Reply::Array(found)] => {
                    for key in found {
                        if let Reply::Bulk(Some(key)) = key {
                            keys.push(key.clone());
                        }
                    }
                    if next == b"0" {
                        return Ok(keys);
                    }
                    cursor = next.clone();
                }
                _ => return Err(self.unexpected("SCAN", &Reply::Array(parts))),
            }
        }
    }

    /// Copies every key under `from` to the same key under `to`, after deleting what is
    /// under `to`.
    fn copy_all(&self, from: &str, to: &str) -> Result<()> {
        for key in self.keys_under(to)? {
            self.command(&[b"DEL", &key])?;
        }
        for key in self.keys_under(from)? {
            let mut target = to.as_bytes().to_vec();
            target.extend_from_slice(&key[from.len()..]);
            self.command(&[b"COPY", &key, &target, b"REPLACE"])?;
        }
        Ok(())
    }

    fn checkpoint_marker(&self, checkpoint: u64) -> String {
        format!("{}:checkpoint:{checkpoint}", self.namespace)
    }

    fn unexpected(&self, command: &str, reply: &Reply) -> StorageError {
        redis_error(&self.address, format!("{command} answered {reply:?}"))
    }
}

impl StateBackend for RedisState {
    fn value(&self, state: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.command(&[b"GET", &self.live_key(VALUE, state, key)])? {
            Reply::Bulk(value) => Ok(value),
            other => Err(self.unexpected("GET", &other)),
        }
    }

    fn set_value(&self, state: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.command(&[b"SET", &self.live_key(VALUE, state, key), value])
            .map(|_| ())
    }

    fn append(&self, state: &str, key: &[u8], item: &[u8]) -> Result<()> {
        self.command(&[b"RPUSH", &self.live_key(LIST, state, key), item])
            .map(|_| ())
    }

    fn list(&self, state: &str, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        match self.command(&[b"LRANGE", &self.live_key(LIST, state, key), b"0", b"-1"])? {
            Reply::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Reply::Bulk(Some(item)) => Ok(item),
                    other => Err(self.unexpected("LRANGE", &other)),
                })
                .collect(),
            other => Err(self.unexpected("LRANGE", &other)),
        }
    }

    fn map_put(&self, state: &str, key: &[u8], entry: &[u8], value: &[u8]) -> Result<()> {
        self.command(&[b"HSET", &self.live_key(MAP, state, key), entry, value])
            .map(|_| ())
    }

    fn map_entries(&self, state: &str, key: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let reply = self.command(&[b"HGETALL", &self.live_key(MAP, state, key)])?;
        let Reply::Array(flat) = reply else {
            return Err(self.unexpected("HGETALL", &reply));
        };
        let mut entries = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks(2) {
            match pair {
                [Reply::Bulk(Some(entry)), Reply::Bulk(Some(value))] => {
                    entries.push((entry.clone(), value.clone()));
                }
                _ => return Err(self.unexpected("HGETALL", &Reply::Array(pair.to_vec()))),
            }
        }
        entries.sort();
        Ok(entries)
    }

    fn clear(&self, state: &str, key: &[u8]) -> Result<()> {
        let keys = [VALUE, LIST, MAP].map(|kind| self.live_key(kind, state, key));
        self.command(&[b"DEL", &keys[0], &keys[1], &keys[2]])
            .map(|_| ())
    }

    fn snapshot(&self, checkpoint: u64) -> Result<()> {
        let namespace = &self.namespace;
        self.copy_all(
            &format!("{namespace}:live:"),
            &format!("{namespace}:cp{checkpoint}:"),
        )?;
        self.command(&[b"SET", self.checkpoint_marker(checkpoint).as_bytes(), b"1"])
            .map(|_| ())
    }

    fn restore(&self, checkpoint: u64) -> Result<()> {
        match self.command(&[b"EXISTS", self.checkpoint_marker(checkpoint).as_bytes()])? {
            Reply::Integer(1) => {}
            Reply::Integer(_) => return Err(unknown_checkpoint(checkpoint)),
            other => return Err(self.unexpected("EXISTS", &other)),
        }
        let namespace = &self.namespace;
        self.copy_all(
            &format!("{namespace}:cp{checkpoint}:"),
            &format!("{namespace}:live:"),
        )
    }
}

/// Reads one reply; an error message for a Redis error or bytes that are not a reply.
fn read_reply(reader: &mut impl BufRead) -> std::result::Result<Reply, String> {
    let mut line = Vec::new();
    reader
        .read_until(b'\n', &mut line)
        .map_err(|error| error.to_string())?;
    let Some(body) = line.strip_suffix(b"\r\n") else {
        return Err("the connection closed in the middle of a reply".to_string());
    };
    let (kind, rest) = body.split_first().ok_or("an empty reply line")?;
    let text = String::from_utf8_lossy(rest).into_owned();
    let number = || {
        text.parse::<i64>()
            .map_err(|_| format!("not a number: {text:?}"))
    };
    match kind {
        b'+' => Ok(Reply::Status(text)),
        b'-' => Err(format!("Redis error: {text}")),
        b':' => Ok(Reply::Integer(number()?)),
        b'$' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Bulk(None));
            };
            let mut bytes = vec![0u8; len + 2];
            reader
                .read_exact(&mut bytes)
                .map_err(|error| error.to_string())?;
            bytes.truncate(len);
            Ok(Reply::Bulk(Some(bytes)))
        }
        b'*' => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Array(Vec::new()));
            };
            (0..len)
                .map(|_| read_reply(reader))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Reply::Array)
        }
        other => Err(format!("unknown reply type {:?}", char::from(*other))),
    }
}

fn redis_error(address: &str, message: String) -> StorageError {
    StorageError::Io {
        path: PathBuf::from(format!("redis://{address}")),
        source: std::io::Error::other(message),
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// A `redis-server` of the Debian package on a free local port, stopped when dropped.
    struct Server {
        child: Child,
        address: String,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts a server; `None` (saying why) where `redis-server` is not installed, unless
    /// `SABOT_REQUIRE_REDIS` is set (as `.ci/run` does), which makes that a failure.
    fn server() -> Option<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap();
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var_os("SABOT_REQUIRE_REDIS").is_none(),
                    "SABOT_REQUIRE_REDIS is set but redis-server cannot start: {error}"
                );
                eprintln!(
                    "Redis tests skipped: redis-server cannot start here ({error}); install the redis-server package"
                );
                return None;
            }
        };
        let address = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server { child, address })
    }

    #[test]
    fn redis_state_keeps_values_lists_maps_and_snapshots() {
        let Some(server) = server() else {
            return;
        };
        let backend = RedisState::connect(&server.address, "operators").unwrap();
        crate::state::tests::exercise(&backend);
        // Another namespace on the same server sees none of it.
        let other = RedisState::connect(&server.address, "other").unwrap();
        assert_eq!(other.value("count", b"k1").unwrap(), None);
        assert!(other.restore(7).is_err());
        assert!(RedisState::connect(&server.address, "bad name*").is_err());
    }

    #[test]
    fn an_unreachable_server_is_an_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|address| address.port())
            .unwrap();
        let address = format!("127.0.0.1:{port}");
        let error = RedisState::connect(&address, "state")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains(&address), "{error}");
    }

    #[test]
    fn replies_parse_and_bad_bytes_are_errors_not_panics() {
        let parse = |bytes: &[u8]| read_reply(&mut &bytes[..]);
        assert_eq!(parse(b"+OK\r\n"), Ok(Reply::Status("OK".to_string())));
        assert_eq!(parse(b":42\r\n"), Ok(Reply::Integer(42)));
        assert_eq!(
            parse(b"$3\r\nabc\r\n"),
            Ok(Reply::Bulk(Some(b"abc".to_vec())))
        );
        assert_eq!(parse(b"$-1\r\n"), Ok(Reply::Bulk(None)));
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n:1\r\n"),
            Ok(Reply::Array(vec![
                Reply::Bulk(Some(b"a".to_vec())),
                Reply::Integer(1)
            ]))
        );
        assert!(parse(b"-ERR wrong\r\n").unwrap_err().contains("ERR wrong"));
        for bad in [
            &b""[..],
            b"+OK",
            b"$5\r\nab\r\n",
            b"?x\r\n",
            b":x\r\n",
            b"*2\r\n:1\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
